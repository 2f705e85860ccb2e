"""One line, one OpenAI call.

    pip install "otel-tokenkpi[openai]"
    python examples/quickstart.py                    # no key: the fake OpenAI server shipped with otel-tokenkpi
    OPENAI_API_KEY=sk-... OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python examples/quickstart.py

Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` the span is printed to the console.
"""

import os

import openai

import otel_tokenkpi

otel_tokenkpi.instrument(console="OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ)  # the one line

if os.environ.get("OPENAI_API_KEY"):
    client = openai.OpenAI()
else:  # no key, no network: a local server that answers like the OpenAI API
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

    client = openai.OpenAI(api_key="sk-fake", base_url=FakeOpenAIServer().start().url + "/v1")

reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}])
print(reply.choices[0].message.content)
