//! A real opsd (HTTP API, lease expiry, retention) over a fresh store of the backend the
//! tests run on (`OPSD_TEST_STORE`), on a loopback port; it can be stopped and started again on the same port
//! and file, as a restart would.

use std::net::SocketAddr;
use std::time::Duration;

use opsd_client::{Client, Kind, NewOperation, OpType, Operation, RetryPolicy};
use opsd_domain::{NewApiKey, ProjectScope, Role};
use opsd_server::background::{Background, LiveConfig};
use opsd_server::{AppState, Config};
use opsd_store_suite::TestDb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Server {
    pub addr: SocketAddr,
    pub admin_key: String,
    db: TestDb,
    config: Config,
    running: Option<Running>,
}

struct Running {
    stop: oneshot::Sender<()>,
    served: JoinHandle<std::io::Result<()>>,
    background: Background,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Server {
        let db = TestDb::new().await;
        let store = db.open().await;
        let (_, admin_key) = store
            .create_key(NewApiKey {
                name: "sdk-admin".into(),
                role: Role::Admin,
                projects: ProjectScope::All,
            })
            .await
            .unwrap();
        drop(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server {
            addr,
            admin_key,
            db,
            config,
            running: None,
        };
        server.serve(listener).await;
        server
    }

    async fn serve(&mut self, listener: tokio::net::TcpListener) {
        let store = self.db.open().await;
        let state = AppState::from_parts(store.clone(), store, &self.config);
        let background = Background::start(
            state.background_handles(),
            &LiveConfig {
                retention: Duration::from_secs(3600),
            },
        );
        let (stop, rx) = oneshot::channel::<()>();
        let served = tokio::spawn(opsd_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        self.running = Some(Running {
            stop,
            served,
            background,
        });
    }

    /// Stops the server gracefully (watch streams end, clients must reconnect).
    pub async fn stop(&mut self) {
        let running = self.running.take().expect("not running");
        let _ = running.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), running.served)
            .await
            .expect("shutdown took too long")
            .unwrap()
            .unwrap();
        running.background.stop().await;
    }

    /// Starts again on the same port and database.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener).await;
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An admin client with quick retries.
    pub fn client(&self) -> Client {
        client_for(&self.base(), &self.admin_key)
    }
}

pub fn client_for(base: &str, key: &str) -> Client {
    Client::builder(base)
        .api_key(key)
        .retry_policy(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        })
        .build()
        .unwrap()
}

/// Creates a pending vm operation in `project`.
pub async fn create(client: &Client, project: &str, resource: &str) -> Operation {
    client
        .create(&NewOperation::new(
            project,
            Kind::Vm,
            OpType::Update,
            resource,
        ))
        .await
        .unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
        }
    }
}
