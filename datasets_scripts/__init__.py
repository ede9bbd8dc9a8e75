"""Builders that write Hub-layout dataset folders (parquet per split + README dataset card)."""
