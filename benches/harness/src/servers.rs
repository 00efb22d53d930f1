//! The servers under test. Each one is only a command template, a readiness
//! URL and a query API base, so a new server (ember, once it scrapes) is one
//! more entry.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::blocks::BlockProbe;
use crate::{http, procfs};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{name}: empty command")]
    EmptyCommand { name: String },
    #[error("{name}: cannot start {program:?}: {source}")]
    Spawn { name: String, program: String, source: std::io::Error },
    #[error("{name}: {what}: {source}")]
    Io { name: String, what: String, source: std::io::Error },
    #[error("{name}: not ready at {url} after {waited:?}{exit}")]
    NotReady { name: String, url: String, waited: Duration, exit: String },
    #[error("{name}: signal {signal}: {detail}")]
    Signal { name: String, signal: &'static str, detail: String },
}

/// How to run one server. Templates use `{bin}`, `{config}`, `{data}`,
/// `{port}`; the command is split on whitespace after substitution (paths
/// with spaces are not supported).
#[derive(Debug, Clone, Serialize)]
pub struct ServerSpec {
    pub name: String,
    pub bin: String,
    pub command: String,
    /// Readiness URL template (`{port}`).
    pub ready_url: String,
    /// Query API base template (`{port}`): `<base>/api/v1/query` etc.
    pub api_base: String,
    /// Port the server listens on.
    pub port: u16,
    /// How to measure bytes per sample of its compressed storage.
    pub block_probe: BlockProbe,
}

impl ServerSpec {
    /// The built-in definition of `name` (`prometheus`, `victoriametrics`,
    /// `ember`), listening on `port`, running `bin`.
    pub fn builtin(name: &str, bin: &str, port: u16) -> Option<ServerSpec> {
        let (command, ready, block_probe) = match name {
            "prometheus" => (
                "{bin} --config.file={config} --storage.tsdb.path={data} \
                 --web.listen-address=127.0.0.1:{port} --storage.tsdb.retention.time=1d",
                "/-/ready",
                BlockProbe::BlockDirs,
            ),
            // latencyOffset 0s: VictoriaMetrics hides the last 30 s from
            // queries by default, Prometheus hides nothing; the response
            // cache is off because Prometheus has none.
            "victoriametrics" => (
                "{bin} -storageDataPath={data} -httpListenAddr=127.0.0.1:{port} -retentionPeriod=1d \
                 -promscrape.config={config} -search.latencyOffset=0s -search.disableCache",
                "/health",
                BlockProbe::VictoriaMetricsFlush,
            ),
            "ember" => (
                "{bin} --config.file {config} --storage.tsdb.path {data} --web.listen-address 127.0.0.1:{port} \
                 --storage.tsdb.retention.time=1d",
                "/-/ready",
                BlockProbe::BlockDirs,
            ),
            _ => return None,
        };
        Some(ServerSpec {
            name: name.to_owned(),
            bin: bin.to_owned(),
            command: command.to_owned(),
            ready_url: format!("http://127.0.0.1:{{port}}{ready}"),
            api_base: "http://127.0.0.1:{port}".to_owned(),
            port,
            block_probe,
        })
    }

    /// Adds a block range to the servers that cut blocks (Prometheus and
    /// ember: min = max block duration, so blocks of that range are written
    /// once the head spans 1.5 ranges and are never merged); a no-op for
    /// VictoriaMetrics, which has no blocks.
    pub fn with_block_range(mut self, range: Duration) -> ServerSpec {
        if self.block_probe == BlockProbe::BlockDirs {
            let s = range.as_secs().max(1);
            self.command.push_str(&format!(
                " --storage.tsdb.min-block-duration={s}s --storage.tsdb.max-block-duration={s}s"
            ));
        }
        self
    }

    /// The command line for the given scrape config and data dir.
    pub fn argv(&self, config: &Path, data: &Path) -> Vec<String> {
        self.command
            .replace("{bin}", &self.bin)
            .replace("{config}", &config.display().to_string())
            .replace("{data}", &data.display().to_string())
            .replace("{port}", &self.port.to_string())
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    pub fn ready(&self) -> String {
        self.ready_url.replace("{port}", &self.port.to_string())
    }

    pub fn api(&self) -> String {
        self.api_base.replace("{port}", &self.port.to_string())
    }
}

/// A running server process.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub started: Instant,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `spec` with stdout and stderr appended to `log`.
pub fn start(spec: &ServerSpec, config: &Path, data: &Path, log: &Path) -> Result<Running, ServerError> {
    let argv = spec.argv(config, data);
    let (program, args) =
        argv.split_first().ok_or_else(|| ServerError::EmptyCommand { name: spec.name.clone() })?;
    let io = |what: &str, source| ServerError::Io { name: spec.name.clone(), what: what.to_owned(), source };
    let out = File::options().create(true).append(true).open(log).map_err(|e| io("log file", e))?;
    let err = out.try_clone().map_err(|e| io("log file", e))?;
    std::fs::create_dir_all(data).map_err(|e| io("data dir", e))?;
    let started = Instant::now();
    let child =
        Command::new(program).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(
            |source| ServerError::Spawn { name: spec.name.clone(), program: program.clone(), source },
        )?;
    Ok(Running { child, started })
}

/// Polls the readiness URL every 50 ms until it answers 200, the process
/// exits, or `timeout` passes. Returns the time from exec to ready and the
/// CPU seconds the process used until then.
pub fn wait_ready(
    spec: &ServerSpec,
    run: &mut Running,
    timeout: Duration,
) -> Result<(f64, f64), ServerError> {
    let url = spec.ready();
    loop {
        if let Ok(r) = http::get(&url, Duration::from_secs(2)) {
            if r.status == 200 {
                let secs = run.started.elapsed().as_secs_f64();
                let cpu = procfs::cpu(run.pid()).map(|c| c.seconds()).unwrap_or(f64::NAN);
                return Ok((secs, cpu));
            }
        }
        let exited = run.child.try_wait().ok().flatten();
        if exited.is_some() || run.started.elapsed() > timeout {
            let exit = exited.map(|s| format!(" (process exited: {s})")).unwrap_or_default();
            return Err(ServerError::NotReady {
                name: spec.name.clone(),
                url,
                waited: run.started.elapsed(),
                exit,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` ("TERM" or "KILL") and waits for the process to exit, up
/// to `timeout` (after which it is killed). Returns seconds until exit.
pub fn stop(
    spec: &ServerSpec,
    run: &mut Running,
    signal: &'static str,
    timeout: Duration,
) -> Result<f64, ServerError> {
    let sig_err = |detail: String| ServerError::Signal { name: spec.name.clone(), signal, detail };
    if run.child.try_wait().map_err(|e| sig_err(e.to_string()))?.is_some() {
        return Err(sig_err("process had already exited".to_owned()));
    }
    let t0 = Instant::now();
    // std only offers SIGKILL; kill(1) sends the others. Only this child's
    // own pid is signalled.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(run.pid().to_string())
        .status()
        .map_err(|e| sig_err(e.to_string()))?;
    if !status.success() {
        return Err(sig_err(format!("kill exited with {status}")));
    }
    loop {
        if run.child.try_wait().map_err(|e| sig_err(e.to_string()))?.is_some() {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > timeout {
            let _ = run.child.kill();
            let _ = run.child.wait();
            return Err(sig_err(format!("still running after {timeout:?}; killed")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Path of a server's data dir and log under the run's work dir.
pub fn paths(work: &Path, name: &str) -> (PathBuf, PathBuf) {
    (work.join(format!("{name}-data")), work.join(format!("{name}.log")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_command_lines() {
        let p = ServerSpec::builtin("prometheus", "/usr/bin/prometheus", 19090).unwrap();
        let argv = p.argv(Path::new("/w/scrape.yml"), Path::new("/w/prometheus-data"));
        assert_eq!(
            argv,
            [
                "/usr/bin/prometheus",
                "--config.file=/w/scrape.yml",
                "--storage.tsdb.path=/w/prometheus-data",
                "--web.listen-address=127.0.0.1:19090",
                "--storage.tsdb.retention.time=1d",
            ]
        );
        assert_eq!(p.ready(), "http://127.0.0.1:19090/-/ready");
        let vm = ServerSpec::builtin("victoriametrics", "vm", 19091).unwrap();
        assert_eq!(vm.ready(), "http://127.0.0.1:19091/health");
        assert!(vm.argv(Path::new("c.yml"), Path::new("d")).contains(&"-promscrape.config=c.yml".to_owned()));
        let e = ServerSpec::builtin("ember", "target/release/ember", 19092).unwrap();
        assert_eq!(
            e.argv(Path::new("c.yml"), Path::new("d")),
            [
                "target/release/ember",
                "--config.file",
                "c.yml",
                "--storage.tsdb.path",
                "d",
                "--web.listen-address",
                "127.0.0.1:19092",
                "--storage.tsdb.retention.time=1d",
            ]
        );
        assert_eq!(e.api(), "http://127.0.0.1:19092");
        assert!(ServerSpec::builtin("thanos", "x", 1).is_none());
    }

    #[test]
    fn block_range_goes_to_the_block_writing_servers_only() {
        let five = Duration::from_secs(300);
        for name in ["prometheus", "ember"] {
            let argv = ServerSpec::builtin(name, "b", 1)
                .unwrap()
                .with_block_range(five)
                .argv(Path::new("c"), Path::new("d"));
            assert!(argv.contains(&"--storage.tsdb.min-block-duration=300s".to_owned()), "{argv:?}");
            assert!(argv.contains(&"--storage.tsdb.max-block-duration=300s".to_owned()), "{argv:?}");
        }
        let vm = ServerSpec::builtin("victoriametrics", "b", 1).unwrap();
        let plain = vm.argv(Path::new("c"), Path::new("d"));
        assert_eq!(vm.with_block_range(five).argv(Path::new("c"), Path::new("d")), plain);
    }

    #[test]
    fn missing_binary_is_an_error_value() {
        let spec = ServerSpec::builtin("ember", "/nonexistent/ember-bench-test-bin", 1).unwrap();
        let dir = std::env::temp_dir().join(format!("ember-bench-spawn-{}", std::process::id()));
        let (data, log) = paths(&dir, "ember");
        std::fs::create_dir_all(&dir).unwrap();
        let err = start(&spec, Path::new("c.yml"), &data, &log).unwrap_err();
        assert!(matches!(err, ServerError::Spawn { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
