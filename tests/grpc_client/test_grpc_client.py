"""Google's own long-running-operation client (google-api-core, the library under every
GAPIC client) against opsd's google.longrunning.Operations, unchanged: the operations
client, and the operation future that GAPIC methods return, finished by a producer
through the REST API. opsd.v1.OperationMetadata is read from the server by reflection."""

import threading
import time
import uuid

import grpc
import pytest
from google.api_core import exceptions, operation, operations_v1
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import descriptor_pool, empty_pb2, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def project():
    return f"grpc-{uuid.uuid4().hex[:12]}"


def name(op):
    return f"projects/{op['project_id']}/operations/{op['id']}"


@pytest.fixture(scope="module")
def channel(opsd):
    with grpc.insecure_channel(opsd.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def auth(opsd):
    return [("authorization", f"Bearer {opsd.key}")]


@pytest.fixture(scope="module")
def client(channel):
    return operations_v1.OperationsClient(channel)


@pytest.fixture(scope="module")
def metadata_type(channel):
    """opsd.v1.OperationMetadata, built from what the server's reflection serves."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("opsd.v1.OperationMetadata")
    )


def new_op(opsd, p, **extra):
    return opsd.create(project_id=p, kind="vm", type="create", resource_id="vm-1", **extra)


def test_get_decodes_metadata_with_the_opsd_message(opsd, client, auth, metadata_type):
    p = project()
    op = new_op(opsd, p)
    opsd.patch(op["id"], status="running", progress=30)
    got = client.get_operation(name(op), metadata=auth)
    assert got.name == name(op) and not got.done
    meta = metadata_type()
    assert got.metadata.Unpack(meta)
    assert (meta.kind, meta.type, meta.status, meta.progress) == ("vm", "create", "running", 30)


def test_list_with_a_filter_and_paging(opsd, client, auth):
    p = project()
    # More than one page of the server's default (50).
    ops = [new_op(opsd, p) for _ in range(55)]
    for op in ops[:3]:
        opsd.patch(op["id"], status="running")
    listing = client.list_operations(f"projects/{p}", "", metadata=auth)
    pages = list(listing.pages)
    assert len(pages) == 2
    assert {o.name for page in pages for o in page} == {name(o) for o in ops}
    running = client.list_operations(f"projects/{p}", 'metadata.status = "running"', metadata=auth)
    assert sorted(o.name for o in running) == sorted(name(o) for o in ops[:3])
    with pytest.raises(exceptions.InvalidArgument, match="metadata.progress"):
        list(client.list_operations(f"projects/{p}", "metadata.progress = 3", metadata=auth))


def test_cancel_and_delete(opsd, client, auth):
    p = project()
    op = new_op(opsd, p)
    client.cancel_operation(name(op), metadata=auth)
    got = client.get_operation(name(op), metadata=auth)
    assert got.done and got.error.code == grpc.StatusCode.CANCELLED.value[0]
    with pytest.raises(exceptions.FailedPrecondition):
        client.cancel_operation(name(op), metadata=auth)
    running = new_op(opsd, p)
    opsd.patch(running["id"], status="running")
    with pytest.raises(exceptions.FailedPrecondition):
        client.delete_operation(name(running), metadata=auth)
    client.delete_operation(name(op), metadata=auth)
    with pytest.raises(exceptions.NotFound):
        client.get_operation(name(op), metadata=auth)


def finish_later(opsd, op_id, **fields):
    def run():
        time.sleep(1)
        opsd.patch(op_id, **fields)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_from_gapic_result_returns_when_a_producer_finishes(opsd, client, auth, metadata_type):
    p = project()
    op = new_op(opsd, p)
    first = client.get_operation(name(op), metadata=auth)
    future = operation.from_gapic(
        first, client, empty_pb2.Empty, metadata_type=metadata_type, grpc_metadata=auth
    )
    assert not future.done()
    finisher = finish_later(opsd, op["id"], status="done")
    assert isinstance(future.result(timeout=60), empty_pb2.Empty)
    finisher.join()
    assert future.metadata.status == "done"


def test_from_gapic_result_raises_the_mapped_error(opsd, client, auth, metadata_type):
    p = project()
    op = new_op(opsd, p)
    first = client.get_operation(name(op), metadata=auth)
    future = operation.from_gapic(
        first, client, empty_pb2.Empty, metadata_type=metadata_type, grpc_metadata=auth
    )
    error = {"errors": [{"code": "QUOTA_EXCEEDED", "message": "no cpu left in zone"}]}
    finisher = finish_later(
        opsd, op["id"], status="failed", error=error, http_error_status_code=429
    )
    with pytest.raises(exceptions.TooManyRequests, match="no cpu left in zone"):
        future.result(timeout=60)
    finisher.join()
    assert future.exception().code == 429
    assert future.metadata.status == "failed"


def test_from_grpc_on_a_finished_operation(opsd, channel, auth, metadata_type):
    # google-api-core's from_grpc cannot poll (its refresh function rejects the metadata
    # argument from_grpc always passes it, in every release we checked), so only an
    # operation that is already finished can be read through it.
    p = project()
    op = new_op(opsd, p)
    opsd.patch(
        op["id"],
        status="failed",
        error={"errors": [{"code": "NOPE", "message": "the zone is gone"}]},
        http_error_status_code=404,
    )
    stub = operations_pb2_grpc.OperationsStub(channel)
    got = stub.GetOperation(operations_pb2.GetOperationRequest(name=name(op)), metadata=auth)
    future = operation.from_grpc(got, stub, empty_pb2.Empty, metadata_type=metadata_type)
    with pytest.raises(exceptions.NotFound, match="the zone is gone"):
        future.result(timeout=60)
    done = new_op(opsd, p)
    opsd.patch(done["id"], status="done")
    got = stub.GetOperation(operations_pb2.GetOperationRequest(name=name(done)), metadata=auth)
    result = operation.from_grpc(got, stub, empty_pb2.Empty, metadata_type=metadata_type)
    assert isinstance(result.result(timeout=60), empty_pb2.Empty)
    assert result.metadata.status == "done"


def test_a_bad_key_and_a_hidden_project(opsd, client, auth):
    p, other = project(), project()
    hidden = new_op(opsd, other)
    with pytest.raises(exceptions.Unauthenticated):
        client.get_operation(name(hidden), metadata=[("authorization", "Bearer nope")])
    reader = [("authorization", f"Bearer {opsd.mint('reader', [p], name='grpc-reader')['key_secret']}")]
    with pytest.raises(exceptions.NotFound):
        client.get_operation(name(hidden), metadata=reader)
    with pytest.raises(exceptions.PermissionDenied):
        list(client.list_operations(f"projects/{other}", "", metadata=reader))
