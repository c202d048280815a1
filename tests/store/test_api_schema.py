"""Property-based tests of the read API from its own OpenAPI schema (schemathesis).

Every operation gets requests generated from the schema, valid and invalid: none may
answer 5xx, every status and body must be one the schema documents, a request the
schema allows must not be refused for its shape, and one it forbids must be refused.
The tenant is the key's own, so the handlers behind the guard are reached; the app
has a catalogue and an item codebook, so no operation is cut short.
"""

from __future__ import annotations

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from memory_store.candidates import content_vectors
from memory_store.codebook.item_codebook import ItemCodebook
from memory_store.codebook.store import CodebookStore
from streams.serve.api import create_app
from tests.store.test_candidates_api import CONFIG, items
from tests.store.test_http_api import ACME, KEYS, memory_reader
from tests.unit.fake_embedding import fake_embed

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    folder = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    codebook = ItemCodebook(CONFIG, CodebookStore(str(folder)))
    codebook.fit("acme", {"content": content_vectors(fake_embed, items("acme"))})
    app = create_app(memory_reader(folder, codebook), KEYS)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_to_its_schema(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 5  # healthz, memory, memories, retrieve, candidates
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.path == "/healthz":
            continue  # no parameters, no body: nothing to get wrong

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True,  # the same cases on every run: CI never flakes on a new one
                  database=None)  # fmt: skip
        def keeps_to_it(case: schemathesis.Case) -> None:
            # The key's own tenant and the key itself, unless the case is about them (a
            # negative case whose path or headers were made invalid must stay invalid).
            meta = case.meta
            if (
                case.path_parameters
                and "tenant" in case.path_parameters
                and not (meta and meta.is_negative_at(ParameterLocation.PATH))
            ):
                case.path_parameters["tenant"] = "acme"
            negative_headers = meta is not None and meta.is_negative_at(ParameterLocation.HEADER)
            case.call_and_validate(headers=None if negative_headers else ACME)

        keeps_to_it()
