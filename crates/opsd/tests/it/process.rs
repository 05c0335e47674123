//! Starting and stopping the real binary on a port chosen by the OS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `opsd serve`.
pub struct Opsd {
    pub child: Child,
    pub base: String,
}

impl Opsd {
    /// Starts `opsd serve` on 127.0.0.1:0 with `data_dir` and waits for its address.
    pub fn start(data_dir: &Path) -> Opsd {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opsd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("OPSD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start opsd");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("opsd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from opsd: {line:?}"))
            .to_owned();
        Opsd { child, base }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Opsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
