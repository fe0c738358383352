"""The official `openai` SDK against `tokenhub gateway`: what a client holding a TokenHub data
key sees. Prints one JSON object with what each call gave; the Rust test checks it.

    python client.py <gateway base url with /v1> <data key> <model> <spent key> [<embedding model>]
"""

import json
import sys

import openai
from openai import OpenAI

base_url, key, model, spent_key = sys.argv[1:5]
embedding_model = sys.argv[5] if len(sys.argv) > 5 else model
out = {}
client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)

completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
out["content"] = completion.choices[0].message.content
out["usage"] = completion.usage.total_tokens if completion.usage else None

chunks = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hi"}], stream=True
)
out["streamed"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

embedding = client.embeddings.create(model=embedding_model, input="Hi")
out["embedding"] = len(embedding.data[0].embedding)

out["models"] = [m.id for m in client.models.list()]

for name, bad_key in [("wrong_key", key + "x"), ("spent", spent_key)]:
    try:
        OpenAI(base_url=base_url, api_key=bad_key, max_retries=0).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi"}]
        )
        out[name] = "accepted"
    except openai.APIStatusError as e:
        out[name] = {"status": e.status_code, "code": e.code, "type": e.type}

print(json.dumps(out))
