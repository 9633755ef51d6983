"""Helpers every test suite shares: :mod:`tests.support.waiting` (poll with a deadline),
:mod:`tests.support.cluster` (a real server and workers, started and stopped by pid),
:mod:`tests.support.postgres` (a database of a test's own) and :mod:`tests.support.prometheus`
(reading a metrics exposition)."""
