"""One line, one OpenAI call.

pip install "otel-tokenkpi[openai]"
OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OPENAI_API_KEY=sk-... python examples/quickstart.py
"""

import openai

import otel_tokenkpi

otel_tokenkpi.instrument()

client = openai.OpenAI()
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}])
print(reply.choices[0].message.content)
