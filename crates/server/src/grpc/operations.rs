//! `google.longrunning.Operations` over the store. Each method calls what its REST
//! counterpart calls — the caller's role and project checks, the store's cancel and
//! delete, the waiters' registry — so the rules are the same whichever API is used.
//! Authentication, rate and concurrency limits ran before the request got here.

use std::time::Duration;

use opsd_domain::ValidationError;
use opsd_domain::duration::{DEFAULT_WAIT, MAX_WAIT};
use opsd_domain::{ListFilter, Operation, PageRequest, Role, Sort, lro_view};
use opsd_grpc_proto::google::longrunning::operations_server::Operations;
use opsd_grpc_proto::google::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, GetOperationRequest, ListOperationsRequest,
    ListOperationsResponse, Operation as LroOperation, WaitOperationRequest,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::convert;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::resume_list;
use crate::http::nirvana::operations::not_found;
use crate::read_cache::View;

/// The service, over the server's state.
pub struct OperationsService {
    pub(super) state: AppState,
}

type Answer<T> = Result<Response<T>, Status>;

/// The caller the authentication step attached to the request.
fn caller<T>(request: &Request<T>) -> Result<Caller, ApiError> {
    Caller::attached(request.extensions().get())
}

fn fail(e: ApiError) -> Status {
    super::status::of(&e)
}

impl OperationsService {
    /// Operation `name`, if the caller may act on it with `role`. One in another project
    /// than its name says, or hidden from the caller, is not found, as in REST.
    async fn load(&self, caller: &Caller, role: Role, name: &str) -> Result<Operation, ApiError> {
        caller.require(role)?;
        let (project, id) = lro_view::parse_operation_name("name", name)?;
        self.load_in(caller, role, &project, id).await
    }

    /// [`Self::load`] of operation `id` named in `project`, the name already parsed.
    async fn load_in(
        &self,
        caller: &Caller,
        role: Role,
        project: &str,
        id: uuid::Uuid,
    ) -> Result<Operation, ApiError> {
        let op = self.state.store.get(id).await?;
        let op = op
            .filter(|op| op.project_id == project)
            .ok_or_else(|| not_found(id))?;
        caller.require_operation(role, &op)?;
        Ok(op)
    }

    /// `GetOperation`, served from the read cache when this rendering of the operation
    /// is there and current (as `GET /v1/operations/{id}` is): Google clients poll it.
    async fn get(&self, caller: &Caller, name: &str) -> Result<LroOperation, ApiError> {
        caller.require(Role::Reader)?;
        let (project, id) = lro_view::parse_operation_name("name", name)?;
        let reads = &self.state.reads;
        if let Some(hit) = reads.operation(id, &View::Lro) {
            if *hit.project != *project {
                return Err(not_found(id));
            }
            caller.require_operation_in(Role::Reader, id, &hit.project)?;
            if let Ok(op) = LroOperation::decode(hit.body) {
                return Ok(op);
            }
        }
        // Taken before the read: an answer that a change overtook is not kept.
        let ticket = reads.ticket();
        let op = self.load_in(caller, Role::Reader, &project, id).await?;
        let answer = convert::operation(&op);
        let body = answer.encode_to_vec().into();
        reads.keep_operation(ticket, id, View::Lro, op.version, &op.project_id, body);
        Ok(answer)
    }

    async fn list(
        &self,
        caller: &Caller,
        r: ListOperationsRequest,
    ) -> Result<ListOperationsResponse, ApiError> {
        caller.require(Role::Reader)?;
        let project = lro_view::parse_parent("name", &r.name)?;
        caller.require_project(Role::Reader, &project)?;
        let mut filter = ListFilter {
            project_id: project,
            ..ListFilter::default()
        };
        lro_view::apply_filter(&r.filter, &mut filter)?;
        let limit = lro_view::page_size(r.page_size)?;
        let sort = Sort::default();
        let (scope, cursor) =
            resume_list("page_token", Some(r.page_token.as_str()), &filter, &sort)?;
        let page = self
            .state
            .store
            .list(
                &filter,
                &sort,
                &PageRequest {
                    cursor,
                    limit,
                    count_total: false,
                },
            )
            .await?;
        Ok(ListOperationsResponse {
            operations: page.items.iter().map(convert::operation).collect(),
            next_page_token: page.next.map(|c| c.encode(&scope)).unwrap_or_default(),
            unreachable: Vec::new(),
        })
    }

    async fn delete(&self, caller: &Caller, name: &str) -> Result<(), ApiError> {
        let op = self.load(caller, Role::Producer, name).await?;
        self.state.store.delete_finished(op.id).await?;
        // As after retention: no rendering of the deleted operation may be served.
        self.state.reads.forget_everything();
        tracing::info!(operation = %op.id, by = %caller.0.name, "operation deleted");
        Ok(())
    }

    async fn cancel(&self, caller: &Caller, name: &str) -> Result<(), ApiError> {
        let op = self.load(caller, Role::Producer, name).await?;
        let op = self.state.store.cancel(op.id).await?;
        tracing::info!(operation = %op.id, status = %op.status, by = %caller.0.name, "cancellation requested");
        Ok(())
    }

    /// As REST's wait: registered before the read, visibility checked before sleeping,
    /// woken by the commit of the write (on any replica).
    async fn wait(&self, caller: &Caller, r: WaitOperationRequest) -> Result<Operation, ApiError> {
        caller.require(Role::Reader)?;
        let (_, id) = lro_view::parse_operation_name("name", &r.name)?;
        let timeout = wait_timeout(r.timeout)?;
        let me = self.state.live.waiters.register(id);
        let op = self.load(caller, Role::Reader, &r.name).await?;
        if op.status.is_terminal() {
            return Ok(op);
        }
        me.sleep(
            &*self.state.store,
            op.version,
            tokio::time::Instant::now() + timeout,
            self.state.live.shutdown_signal(),
        )
        .await?
        .ok_or_else(|| not_found(id))
    }
}

/// The wait's `timeout`: the default when unset, the server's limit at most.
fn wait_timeout(timeout: Option<prost_types::Duration>) -> Result<Duration, ApiError> {
    let Some(t) = timeout else {
        return Ok(DEFAULT_WAIT);
    };
    let (Ok(seconds), Ok(nanos)) = (u64::try_from(t.seconds), u32::try_from(t.nanos)) else {
        return Err(ValidationError::new("timeout", "must not be negative").into());
    };
    Ok(Duration::new(seconds, nanos.min(999_999_999)).min(MAX_WAIT))
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn list_operations(
        &self,
        request: Request<ListOperationsRequest>,
    ) -> Answer<ListOperationsResponse> {
        let caller = caller(&request).map_err(fail)?;
        self.list(&caller, request.into_inner())
            .await
            .map(Response::new)
            .map_err(fail)
    }

    async fn get_operation(&self, request: Request<GetOperationRequest>) -> Answer<LroOperation> {
        let caller = caller(&request).map_err(fail)?;
        self.get(&caller, &request.get_ref().name)
            .await
            .map(Response::new)
            .map_err(fail)
    }

    async fn delete_operation(&self, request: Request<DeleteOperationRequest>) -> Answer<()> {
        let caller = caller(&request).map_err(fail)?;
        self.delete(&caller, &request.get_ref().name)
            .await
            .map(Response::new)
            .map_err(fail)
    }

    async fn cancel_operation(&self, request: Request<CancelOperationRequest>) -> Answer<()> {
        let caller = caller(&request).map_err(fail)?;
        self.cancel(&caller, &request.get_ref().name)
            .await
            .map(Response::new)
            .map_err(fail)
    }

    async fn wait_operation(&self, request: Request<WaitOperationRequest>) -> Answer<LroOperation> {
        let caller = caller(&request).map_err(fail)?;
        let op = self
            .wait(&caller, request.into_inner())
            .await
            .map_err(fail)?;
        Ok(Response::new(convert::operation(&op)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts() {
        assert_eq!(wait_timeout(None).unwrap(), DEFAULT_WAIT);
        let d = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
        assert_eq!(wait_timeout(d(5, 0)).unwrap(), Duration::from_secs(5));
        assert_eq!(wait_timeout(d(3600, 0)).unwrap(), MAX_WAIT);
        assert!(wait_timeout(d(-1, 0)).is_err());
    }
}
