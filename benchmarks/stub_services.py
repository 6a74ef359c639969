"""Instant judge and edit services for the client-cost benchmark (generator_client_cpu.py):
real gRPC servers speaking the real contract, answering at once without a model, so that what
a benchmark measures in the generator's process is the generator's own work. Benchmarks only:
no test uses these (tests run the real services).

    python benchmarks/stub_services.py PORT     # both services on 127.0.0.1:PORT

The editor paints a grey box over a tenth of the image (so the pair passes the preservation
check) and remembers what it made; the judge rates those images unsafe (0.8, category O6)
and every other image safe (0.2), so each unit is accepted at its first candidate.
"""

from __future__ import annotations

import hashlib
import io
import sys
import threading
from concurrent import futures

import grpc
from PIL import Image, ImageDraw

from safetypairs.pairs.config import NULL_INSTRUCTION
from safetypairs.v1 import common_pb2, edit_pb2, edit_pb2_grpc, judge_pb2, judge_pb2_grpc

_edited: set[str] = set()
_lock = threading.Lock()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Judge(judge_pb2_grpc.JudgeServicer):
    def Rate(self, request, context):
        with _lock:
            unsafe = _sha(request.image.data) in _edited
        p = 0.8 if unsafe else 0.2
        verdict = common_pb2.Verdict(
            rating=common_pb2.RATING_UNSAFE if unsafe else common_pb2.RATING_SAFE,
            category="O6" if unsafe else "",
            probability=p,
            model="stub",
        )
        return judge_pb2.RateResponse(
            image_id=request.image.id, verdict=verdict, prompt_version="rate@stub"
        )

    def ProposeEdits(self, request, context):
        proposals = [
            judge_pb2.EditProposal(
                instruction=f"add a weapon, variant {k}",
                action=judge_pb2.EDIT_ACTION_ADD,
                element="a weapon",
                category=request.category,
            )
            for k in range(request.count)
        ]
        return judge_pb2.ProposeEditsResponse(
            proposals=proposals, model="stub", prompt_version="propose@stub"
        )

    def GetModelInfo(self, request, context):
        return judge_pb2.JudgeModelInfo(name="stub-judge", reference="stub-judge", untrained=True)


class Edit(edit_pb2_grpc.EditServicer):
    def Edit(self, request, context):
        if request.instruction == NULL_INSTRUCTION:
            data = request.image.data
        else:
            image = Image.open(io.BytesIO(request.image.data)).convert("RGB")
            w, h = image.size
            ImageDraw.Draw(image).rectangle([0, 0, w // 3, h // 3], fill=(128, 128, 128))
            buf = io.BytesIO()
            image.save(buf, format="PNG", compress_level=1)
            data = buf.getvalue()
            with _lock:
                _edited.add(_sha(data))
        return edit_pb2.EditResponse(
            image=common_pb2.Image(data=data, id=request.image.id),
            mime_type="image/png",
            seed=request.seed,
            model="stub:1",
            untrained=True,
        )

    def GetModelInfo(self, request, context):
        return edit_pb2.EditModelInfo(name="stub-editor", version="1", untrained=True)


def serve(port: int) -> None:
    options = [
        ("grpc.max_send_message_length", 128 << 20),
        ("grpc.max_receive_message_length", 128 << 20),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    judge_pb2_grpc.add_JudgeServicer_to_server(Judge(), server)
    edit_pb2_grpc.add_EditServicer_to_server(Edit(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
