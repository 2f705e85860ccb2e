"""Test helpers shipped with otel-tokenkpi: a local fake OpenAI API server for tests and the demo."""
