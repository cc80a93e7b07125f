//! One host over SSH: a multiplexed master connection of the system's OpenSSH client (through
//! the `openssh` crate), and the small POSIX shell scripts the driver runs there. Every step
//! is bounded by `--ssh-timeout`; every failure becomes a reason a person can act on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::hosts::Host;
use crate::cli::SshHostArgs;

/// What every script starts with: `$1` is the install directory (`~/` and relative paths are
/// under the home directory, where ssh starts); it must exist for all but `prepare`.
const PRELUDE: &str = r#"dir=$1; shift
case $dir in "~") dir=$HOME ;; "~/"*) dir="$HOME/${dir#"~/"}" ;; esac
mine() { case $(readlink "/proc/$1/exe" 2>/dev/null) in "$dir/eddy-mapper"*) return 0 ;; esac; return 1; }
"#;

/// Creates the directories, proves they are writable, reports the absolute directory, the
/// address this host sees us connect from, live workers of earlier clouds and the binary's hash.
const PREPARE: &str = r#"mkdir -p "$dir/run" "$dir/logs" || exit 3
cd "$dir" || exit 3
dir=$(pwd)
probe=".eddy-write-probe.$$"
if ! ( : > "$probe" ) 2>/dev/null; then echo "the install directory $dir is not writable" >&2; exit 3; fi
rm -f "$probe"
echo "dir $dir"
echo "client ${SSH_CONNECTION%% *}"
if [ -f run/workers ]; then
  while read -r cloud id pid; do mine "$pid" && echo "running $cloud $id $pid"; done < run/workers
fi
echo "hash $(sha256sum eddy-mapper 2>/dev/null | cut -d' ' -f1)"
"#;

/// Standard input becomes the binary (written aside, then renamed over the old one, which a
/// running process keeps); prints the new hash.
const UPLOAD: &str = r#"cd "$dir" || exit 3
umask 022
cat > .eddy-mapper.upload || { rm -f .eddy-mapper.upload; exit 3; }
chmod 755 .eddy-mapper.upload && mv -f .eddy-mapper.upload eddy-mapper || exit 3
sha256sum eddy-mapper | cut -d' ' -f1
"#;

/// `$1` cloud, `$2` worker id. Standard input: the secret on the first line, then the worker's
/// settings as `export` lines. The worker gets its own session (setsid without fork, so `$!`
/// is the worker itself): it outlives this shell and the SSH connection, while this shell
/// waits for it and reports how it ended, with the end of its log.
const LAUNCH: &str = r#"cd "$dir" || exit 3
cloud=$1; id=$2
umask 077
IFS= read -r secret || exit 3
rm -f run/secret && printf '%s\n' "$secret" > run/secret || exit 3
cat > "run/worker-$id.env" || exit 3
. "./run/worker-$id.env"
export EDDY_SECRET_FILE="$dir/run/secret"
setsid ./eddy-mapper < /dev/null >> "logs/worker-$id.log" 2>&1 &
pid=$!
echo "$cloud $id $pid" >> run/workers
echo "started $pid"
wait "$pid"
echo "exit $?"
tail -n 15 "logs/worker-$id.log"
"#;

/// `$1` cloud, `$2` the leader's REST URL: what `ssh status` and `ssh restart` start from.
const RECORD: &str = r#"cd "$dir" || exit 3
printf '%s %s\n' "$1" "$2" > run/cloud
"#;

/// Every worker the state lists: cloud, id, pid, running or gone; then the recorded cloud.
const STATUS: &str = r#"cd "$dir" 2>/dev/null || exit 0
dir=$(pwd)
if [ -f run/workers ]; then
  while read -r cloud id pid; do
    if mine "$pid"; then echo "worker $cloud $id $pid running"; else echo "worker $cloud $id $pid gone"; fi
  done < run/workers
fi
[ -f run/cloud ] && echo "cloud $(cat run/cloud)"
exit 0
"#;

/// `$1` grace in tenths of a second, then pids (none: every worker the state lists). SIGTERM,
/// then SIGKILL after the grace; the state forgets every worker that is gone.
const STOP: &str = r#"cd "$dir" 2>/dev/null || exit 0
dir=$(pwd)
tenths=$1; shift
[ $# -gt 0 ] || set -- $(cut -d' ' -f3 run/workers 2>/dev/null)
live=
for pid; do if mine "$pid"; then kill -TERM "$pid" 2>/dev/null; live="$live $pid"; fi; done
i=0
while [ -n "$live" ] && [ "$i" -lt "$tenths" ]; do
  sleep 0.1; i=$((i + 1))
  still=; for pid in $live; do mine "$pid" && still="$still $pid"; done; live=$still
done
for pid in $live; do kill -KILL "$pid" 2>/dev/null && echo "killed $pid"; done
i=0
while [ -n "$live" ] && [ "$i" -lt 50 ]; do
  sleep 0.1; i=$((i + 1))
  still=; for pid in $live; do mine "$pid" && still="$still $pid"; done; live=$still
done
if [ -f run/workers ]; then
  while read -r cloud id pid; do mine "$pid" && echo "$cloud $id $pid"; done < run/workers > run/workers.new
  mv -f run/workers.new run/workers
fi
[ -z "$live" ] || { echo "still running after SIGKILL:$live" >&2; exit 4; }
echo stopped
"#;

/// Prints the cluster secret the last cloud used (for `ssh restart`).
const SECRET: &str = r#"cd "$dir" 2>/dev/null && cat run/secret"#;

/// An open connection to one host.
#[derive(Clone)]
pub struct Remote {
    /// The host as the file names it.
    pub host: Host,
    session: Arc<Session>,
    /// The install directory as given (absolute once [`Remote::prepare`] ran).
    pub dir: String,
    timeout: Duration,
}

/// What [`Remote::prepare`] found.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Absolute install directory.
    pub dir: String,
    /// The address the host sees our connection come from.
    pub client_ip_opt: Option<std::net::IpAddr>,
    /// Workers of an earlier cloud still running: (cloud, id, pid).
    pub running: Vec<(String, String, u32)>,
    /// SHA-256 of the installed binary, if one is there.
    pub hash_opt: Option<String>,
}

/// One worker in a host's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Its cloud's name.
    pub cloud: String,
    /// Worker id.
    pub id: String,
    /// Process id on the host.
    pub pid: u32,
    /// Whether that process is still the worker.
    pub running: bool,
}

/// A host's state: its workers and the last cloud recorded (name, leader's REST URL).
#[derive(Debug, Clone, Default)]
pub struct HostState {
    /// Workers the state lists.
    pub workers: Vec<WorkerState>,
    /// `(cloud, rest url)`, once a cloud formed.
    pub cloud_opt: Option<(String, String)>,
}

/// Standard input for a script.
enum Input<'a> {
    None,
    File(&'a Path),
}

/// The host-key policy of `--host-key-check`.
pub fn known_hosts(text: &str) -> Result<KnownHosts, String> {
    match text {
        "accept-new" => Ok(KnownHosts::Add),
        "strict" => Ok(KnownHosts::Strict),
        "off" => Ok(KnownHosts::Accept),
        other => Err(format!("--host-key-check {other:?}: choose accept-new, strict or off")),
    }
}

/// Why ssh failed, in words a person acts on (ssh's own message follows).
fn explain_ssh(message: &str) -> String {
    let m = message.trim().trim_start_matches("ssh: ");
    let hint = if m.contains("Permission denied") {
        "authentication failed (check --user, --key-file, your agent)"
    } else if m.contains("Host key verification failed") || m.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        "the host key is unknown or changed (check known_hosts, --host-key-check)"
    } else if m.contains("Could not resolve hostname") {
        "unknown host name"
    } else if m.contains("Connection refused") {
        "unreachable: nothing listens on its SSH port"
    } else if m.contains("timed out") || m.contains("No route to host") || m.contains("Network is unreachable") {
        "unreachable"
    } else {
        "ssh failed"
    };
    let last = m.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with("Warning: Permanently added")).unwrap_or("");
    if last.is_empty() {
        hint.to_string()
    } else {
        format!("{hint}: {last}")
    }
}

/// Why a script failed.
fn explain_script(step: &str, stderr: &str) -> String {
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if stderr.contains("No space left on device") || stderr.contains("Disk quota exceeded") {
        format!("{step}: no space in the install directory ({last})")
    } else if stderr.contains("Read-only file system") || stderr.contains("Permission denied") || stderr.contains("not writable") {
        format!("{step}: the install directory is not writable ({last}); choose another --install-dir")
    } else if last.is_empty() {
        format!("{step} failed")
    } else {
        format!("{step} failed: {last}")
    }
}

impl Remote {
    /// Opens the master connection (bounded by the timeout, ssh's ConnectTimeout included).
    pub async fn connect(host: Host, args: &SshHostArgs, control_dir: &Path) -> Result<Self, String> {
        let mut builder = SessionBuilder::default();
        builder.known_hosts_check(known_hosts(&args.host_key_check)?).control_directory(control_dir).connect_timeout(args.ssh_timeout);
        // ServerAlive lets the master notice a host that vanished instead of hanging on it.
        builder.server_alive_interval(Duration::from_secs(5));
        // A master outlives its last client by a minute at most, even if the driver is killed
        // before it could end the masters itself.
        builder.control_persist(ControlPersist::IdleFor(std::num::NonZeroUsize::new(60).unwrap_or(std::num::NonZeroUsize::MIN)));
        if let Some(user) = host.user_opt.clone().or_else(|| args.user.clone()) {
            builder.user(user);
        }
        if let Some(port) = host.port_opt {
            builder.port(port);
        }
        if let Some(key) = &args.key_file {
            builder.keyfile(key);
        }
        if let Some(config) = &args.ssh_config {
            builder.config_file(config);
        }
        let connect = builder.connect(&host.name);
        let session = match tokio::time::timeout(args.ssh_timeout + Duration::from_secs(5), connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(explain_ssh(&crate::error_chain(&e))),
            Err(_) => return Err(format!("unreachable: no SSH connection within {:?} (--ssh-timeout)", args.ssh_timeout)),
        };
        Ok(Self { host, session: Arc::new(session), dir: args.install_dir.clone(), timeout: args.ssh_timeout })
    }

    /// Runs `PRELUDE` + `body` with `sh -c`, the install directory and `args` as its arguments.
    fn command(&self, body: &str, args: &[String]) -> openssh::OwningCommand<Arc<Session>> {
        let mut cmd = Session::to_command(Arc::clone(&self.session), "sh");
        cmd.arg("-c").arg(format!("{PRELUDE}{body}")).arg("eddy").arg(&self.dir).args(args);
        cmd
    }

    /// Runs a script to its end within the timeout; its standard output, or why it failed.
    async fn script(&self, step: &str, body: &str, args: &[String], input: Input<'_>, timeout: Duration) -> Result<String, String> {
        let run = async {
            let mut cmd = self.command(body, args);
            cmd.stdin(if matches!(input, Input::None) { Stdio::null() } else { Stdio::piped() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().await.map_err(|e| explain_ssh(&crate::error_chain(&e)))?;
            if let Some(mut stdin) = child.stdin().take() {
                let written = match input {
                    Input::File(path) => match tokio::fs::File::open(path).await {
                        Ok(mut f) => tokio::io::copy(&mut f, &mut stdin).await.map(|_| ()),
                        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
                    },
                    Input::None => Ok(()),
                };
                // A failed write shows up as the script's own error (no space, ...) below.
                let _ = written;
                let _ = stdin.shutdown().await;
            }
            let out = child.wait_with_output().await.map_err(|e| explain_ssh(&crate::error_chain(&e)))?;
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            match out.status.code() {
                Some(0) => Ok(String::from_utf8_lossy(&out.stdout).to_string()),
                // 255 is ssh's own failure (the connection), anything else the script's.
                Some(255) => Err(explain_ssh(&stderr)),
                _ => Err(explain_script(step, &stderr)),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("{step}: no answer within {timeout:?} (--ssh-timeout)")),
        }
    }

    /// Creates the install directory and reports what is there.
    pub async fn prepare(&mut self) -> Result<Prepared, String> {
        let out = self.script("preparing the install directory", PREPARE, &[], Input::None, self.timeout).await?;
        let mut prepared = Prepared { dir: String::new(), client_ip_opt: None, running: Vec::new(), hash_opt: None };
        for line in out.lines() {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "dir" => prepared.dir = rest.to_string(),
                "client" => prepared.client_ip_opt = rest.parse().ok(),
                "hash" if rest.len() == 64 => prepared.hash_opt = Some(rest.to_string()),
                "running" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    if let [cloud, id, pid] = f[..] {
                        prepared.running.push((cloud.into(), id.into(), pid.parse().unwrap_or_default()));
                    }
                }
                _ => {}
            }
        }
        if prepared.dir.is_empty() {
            return Err("preparing the install directory: the host's shell did not answer as a POSIX shell".into());
        }
        self.dir = prepared.dir.clone();
        Ok(prepared)
    }

    /// Copies the binary over the SSH channel; checks the hash that arrived.
    pub async fn upload(&self, binary: &Path, hash: &str) -> Result<(), String> {
        let out = self.script("copying eddy-mapper", UPLOAD, &[], Input::File(binary), self.timeout).await?;
        if out.trim() != hash {
            return Err(format!("copying eddy-mapper: the copy's SHA-256 is {:?}, not {hash}", out.trim()));
        }
        Ok(())
    }

    /// Starts worker `id`; returns the remote shell that waits for it (its standard output
    /// goes on with `exit CODE` and the end of the log) and the worker's pid.
    pub async fn launch(&self, cloud: &str, id: &str, secret: &str, env_lines: &str) -> Result<(u32, Launched), String> {
        use tokio::io::AsyncBufReadExt;
        let step = format!("starting worker {id}");
        let start = async {
            let mut cmd = self.command(LAUNCH, &[cloud.to_string(), id.to_string()]);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().await.map_err(|e| explain_ssh(&crate::error_chain(&e)))?;
            let mut stdin = child.stdin().take().ok_or("no standard input to the remote shell")?;
            let input = format!("{secret}\n{env_lines}");
            stdin.write_all(input.as_bytes()).await.map_err(|e| format!("{step}: {e}"))?;
            stdin.shutdown().await.map_err(|e| format!("{step}: {e}"))?;
            drop(stdin);
            let stdout = child.stdout().take().ok_or("no standard output from the remote shell")?;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            match lines.next_line().await {
                Ok(Some(line)) if line.starts_with("started ") => {
                    let pid = line["started ".len()..].trim().parse().unwrap_or_default();
                    Ok((pid, Launched { child, lines }))
                }
                _ => {
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr().take() {
                        use tokio::io::AsyncReadExt;
                        let _ = e.read_to_string(&mut stderr).await;
                    }
                    Err(explain_script(&step, &stderr))
                }
            }
        };
        match tokio::time::timeout(self.timeout, start).await {
            Ok(r) => r,
            Err(_) => Err(format!("{step}: no answer within {:?} (--ssh-timeout)", self.timeout)),
        }
    }

    /// Records the formed cloud in the host's state.
    pub async fn record(&self, cloud: &str, rest_url: &str) -> Result<(), String> {
        self.script("recording the cloud", RECORD, &[cloud.to_string(), rest_url.to_string()], Input::None, self.timeout).await.map(drop)
    }

    /// The host's state.
    pub async fn status(&self) -> Result<HostState, String> {
        let out = self.script("reading the state", STATUS, &[], Input::None, self.timeout).await?;
        let mut state = HostState::default();
        for line in out.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[..] {
                ["worker", cloud, id, pid, alive] => state.workers.push(WorkerState {
                    cloud: cloud.into(),
                    id: id.into(),
                    pid: pid.parse().unwrap_or_default(),
                    running: alive == "running",
                }),
                ["cloud", cloud, url] => state.cloud_opt = Some((cloud.into(), url.into())),
                _ => {}
            }
        }
        Ok(state)
    }

    /// Stops `pids` (none: every worker the state lists) and forgets them; the pids killed
    /// after the grace.
    pub async fn stop(&self, grace: Duration, pids: &[u32]) -> Result<Vec<u32>, String> {
        let tenths = (grace.as_millis() / 100).max(1).to_string();
        let mut args = vec![tenths];
        args.extend(pids.iter().map(u32::to_string));
        let out = self.script("stopping workers", STOP, &args, Input::None, self.timeout + grace + Duration::from_secs(10)).await?;
        Ok(out.lines().filter_map(|l| l.strip_prefix("killed ")?.parse().ok()).collect())
    }

    /// Ends the master connection (synchronously: also from `Drop`).
    pub fn close_master(&self) {
        let _ = std::process::Command::new("ssh")
            .arg("-S")
            .arg(self.session.control_socket())
            .args(["-O", "exit", "eddy-host"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// The secret the last cloud on this host used.
    pub async fn secret(&self) -> Result<String, String> {
        let out = self.script("reading the cluster secret", SECRET, &[], Input::None, self.timeout).await?;
        Ok(out.trim().to_string())
    }
}

/// A started worker's remote shell.
pub struct Launched {
    child: openssh::Child<Arc<Session>>,
    lines: tokio::io::Lines<tokio::io::BufReader<openssh::ChildStdout>>,
}

impl Launched {
    /// Waits until the worker ends: (success, how it ended, the end of its log). If the SSH
    /// connection ends first, the worker's fate is unknown: reported as such.
    pub async fn ended(mut self) -> (bool, String, Option<String>) {
        let mut code_opt = None;
        let mut tail = Vec::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            match line.strip_prefix("exit ") {
                Some(code) if code_opt.is_none() => code_opt = code.trim().parse::<i32>().ok(),
                _ if code_opt.is_some() => tail.push(line),
                _ => {}
            }
        }
        let _ = self.child.wait().await;
        let tail_opt = (!tail.is_empty()).then(|| tail.join("\n"));
        match code_opt {
            Some(0) => (true, "exited with code 0".into(), tail_opt),
            Some(c) if c > 128 => (false, format!("killed by signal {}", c - 128), tail_opt),
            Some(c) => (false, format!("exited with code {c}"), tail_opt),
            None => (false, "lost: the SSH connection to its host ended".into(), None),
        }
    }
}

/// The worker's settings as `export` lines for its shell (single-quoted: nothing expands).
pub fn export_lines(env: &std::collections::BTreeMap<String, String>) -> String {
    env.iter().map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''"))).collect()
}

/// A private directory for the control sockets (short: a socket path has ~100 bytes at most).
pub fn control_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("eddy-ssh-").tempdir_in(PathBuf::from("/tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failures_say_what_to_do() {
        assert!(explain_ssh("root@h: Permission denied (publickey).").starts_with("authentication failed"));
        assert!(explain_ssh("ssh: connect to host 10.0.0.9 port 22: Connection refused").starts_with("unreachable: nothing listens"));
        assert!(explain_ssh("ssh: connect to host 10.0.0.9 port 22: Connection timed out").starts_with("unreachable"));
        assert!(explain_script("copying eddy-mapper", "cat: write error: No space left on device\n").contains("no space"));
        assert!(explain_script("x", "mkdir: cannot create directory 'a': Read-only file system").contains("not writable"));
    }

    #[test]
    fn settings_are_quoted_for_the_shell() {
        let env = [("EDDY_NAME".to_string(), "it's $HOME".to_string())].into_iter().collect();
        assert_eq!(export_lines(&env), "export EDDY_NAME='it'\\''s $HOME'\n");
    }
}
