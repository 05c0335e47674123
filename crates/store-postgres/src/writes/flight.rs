//! One round trip for many statements. tokio-postgres pipelines: a query is sent when its
//! future is first polled, and answers come back in order on the one connection. So a
//! flight polls every statement's future once, in order, before awaiting any of them:
//! the statements leave back to back and the flight costs one round trip however many
//! statements it holds. Nothing in a flight may depend on an answer from the same flight
//! (a later statement reads what an earlier one wrote through the database, in the same
//! transaction, never through the client).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

/// One statement of a flight.
pub enum Step<'a> {
    /// A statement without parameters or rows (`BEGIN`, `COMMIT`), sent as a simple query.
    Simple(&'static str),
    /// A prepared statement with its parameters.
    Query(Statement, Vec<&'a (dyn ToSql + Sync)>),
}

type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends every step in one flight and returns each one's rows (empty for `Simple`), in
/// step order. A failed step does not stop the others from being answered; inside a
/// transaction it aborts it, so the flight's `COMMIT` then rolls back.
pub async fn send<'a>(
    client: &'a ClientWrapper,
    steps: &'a [Step<'a>],
) -> Vec<Result<Vec<Row>, Error>> {
    let futures = steps
        .iter()
        .map(|step| -> Pending<'a, Result<Vec<Row>, Error>> {
            match step {
                Step::Simple(sql) => {
                    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
                }
                Step::Query(statement, params) => Box::pin(client.query(statement, params)),
            }
        })
        .collect();
    in_order(futures).await
}

/// Prepares every statement the connection has not prepared yet, in one flight (the
/// cache is per connection: a statement costs a round trip once per connection).
pub async fn prepare(client: &ClientWrapper, sqls: &[&str]) -> Result<Vec<Statement>, Error> {
    let futures = sqls
        .iter()
        .map(|sql| -> Pending<'_, Result<Statement, Error>> {
            Box::pin(client.prepare_cached(sql))
        })
        .collect();
    in_order(futures).await.into_iter().collect()
}

/// Awaits every future, polling each for the first time in the order given (which is
/// the order their requests leave in), and returns their outputs in that order.
async fn in_order<T>(mut futures: Vec<Pending<'_, T>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    // Every slot is filled once the poll above is ready.
    outputs.into_iter().flatten().collect()
}
