"""One line, one OpenAI call.

    pip install "otel-tokenkpi[openai]"
    python examples/quickstart.py                    # no key: the fake OpenAI server shipped with otel-tokenkpi
    OPENAI_API_KEY=sk-... OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python examples/quickstart.py

``console=True`` prints the span. Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` that is all: nothing is sent
anywhere (no metrics either) and the script ends at once. With it, the span is also exported there, with
the metrics; if nothing answers at that endpoint, one log line says so and the script still ends at once.
"""

import os

import openai

import otel_tokenkpi

otel_tokenkpi.instrument(console=True)  # the one line

if os.environ.get("OPENAI_API_KEY"):
    client = openai.OpenAI()
else:  # no key, no network: a local server that answers like the OpenAI API
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

    client = openai.OpenAI(api_key="sk-fake", base_url=FakeOpenAIServer().start().url + "/v1")

reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}])
print(reply.choices[0].message.content)
