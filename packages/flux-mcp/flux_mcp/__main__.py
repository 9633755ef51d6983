def main() -> None:
    raise SystemExit("flux-mcp: not built yet")
