"""Helpers every test suite shares: :mod:`tests.support.waiting` (poll with a deadline) and
:mod:`tests.support.cluster` (a real server and workers, started and stopped by pid)."""
