//! The per-container monitor (the conmon role): a small single-threaded process that
//! is the container's parent. It outlives the `berth` command that started it (double
//! fork, its own session) and is a child subreaper, so the container's first process
//! comes back to it when the runtime's intermediate process exits. It
//!
//! * writes the container's stdout and stderr to the log (see [`crate::logs`]);
//! * records the exit code and time atomically in the record (see [`crate::state`]);
//! * applies the restart policy with exponential back-off;
//! * runs the healthcheck inside the container (runtime `exec`: its namespaces and
//!   cgroup), killing a probe that overruns its timeout, never the container;
//! * answers the control socket ([`control`]): status, stop, kill, pause, attach;
//! * with `stdin_open`, holds the container's stdin (a pipe, or the terminal with
//!   `tty`) for raw attach clients ([`frames`]) to write to, and with `run ... attach`
//!   creates the container but starts it only once the first client attached
//!   (`berth run`: nothing is read or written before it sees the stream).
//!
//! One `poll` loop over the output pipes, a signalfd (SIGCHLD, SIGTERM) and the
//! socket; timers are poll timeouts. No threads: the runtime forks from here.
//!
//! Entry: the `berth-monitor` binary calls [`main`].

mod attach_client;
pub mod control;
mod exec_tty;
pub mod frames;
pub mod health;
mod relay;
pub mod shed;
pub mod stdio;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::config::{ContainerConfig, RestartPolicy};
use crate::logs::{LogWriter, Stream};
use crate::runtime::{CreateOptions, ExecResult, Runtime};
use crate::state::{HealthStatus, ProbeResult, Status, Store};
use control::{Request, Response};

/// Files of a container under BERTH_RUN and BERTH_ROOT.
pub const CONTROL_SOCK: &str = "control.sock";
pub const MONITOR_LOG: &str = "monitor.log";
pub const CONTAINER_LOG: &str = "container.log";

/// First and largest restart delay; the delay goes back to the first after a run this long.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// A container started to wait for its client starts anyway after this long (its
/// client died before attaching): it runs, with stdin closed, its output in the log.
const ATTACH_WAIT: Duration = Duration::from_secs(30);
/// Output queued for a raw client beyond this stops reading the container's output
/// until the client caught up (the container blocks, as under `docker attach`).
const CLIENT_BACKLOG: usize = 256 * 1024;
/// Stdin bytes held for the container at most; clients are not read beyond it.
const STDIN_BACKLOG: usize = 64 * 1024;

/// Runtime state of this engine's containers lives here (under BERTH_RUN).
pub fn runtime_root(run: &Path) -> PathBuf {
    run.join("runtime")
}

/// Exponential back-off: 100 ms, 200 ms, ... up to a minute.
pub fn backoff(restarts_in_a_row: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1u32 << restarts_in_a_row.min(20))
        .min(BACKOFF_MAX)
}

/// Whether `policy` restarts after an exit with `code`, `restarts` restarts so far.
pub fn should_restart(policy: RestartPolicy, code: i32, restarts: u32) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            code != 0 && max_retries.is_none_or(|m| restarts < m)
        }
    }
}

/// Parses `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse().ok()
}

/// The argument that makes a program embedding the monitor (see [`dispatch`]) run as one.
pub const EMBEDDED_ARG: &str = "__berth-monitor";

/// `berth-monitor run ROOT RUN ID [attach]` / `berth-monitor exec ROOT RUN ID PROCESS_JSON` /
/// `berth-monitor attach ROOT RUN ID`.
pub fn main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(run_args(&args[1.min(args.len())..]))
}

/// For a program that embeds the monitor instead of installing `berth-monitor`
/// beside it (`Engine::with_embedded_monitor`): call first thing in `main`, before
/// any thread (an async runtime) starts; it runs the monitor and exits when the
/// program was started as one, and returns otherwise.
pub fn dispatch() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(EMBEDDED_ARG) {
        std::process::exit(run_args(&args[2..]))
    }
}

fn run_args(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("run") if args.len() == 4 || (args.len() == 5 && args[4] == "attach") => run(
            Path::new(&args[1]),
            Path::new(&args[2]),
            &args[3],
            args.len() == 5,
        ),
        Some("attach") if args.len() == 4 => {
            attach_client::run(Path::new(&args[1]), Path::new(&args[2]), &args[3])
        }
        Some("exec") if args.len() == 5 || args.len() == 6 => exec_helper(
            Path::new(&args[2]),
            &args[3],
            &args[4],
            args.get(5).map(String::as_str).unwrap_or("wait"),
        ),
        _ => {
            eprintln!("usage: berth-monitor run ROOT RUN ID [attach] | exec ROOT RUN ID PROCESS_JSON [wait|tty|detach] | attach ROOT RUN ID (started by the berth engine, not by hand)");
            2
        }
    }
}

/// `exec`: runs one process in the container with our stdio, returns its exit code.
/// A separate process because the runtime forks and joins namespaces, which must not
/// happen in the caller's (possibly multi-threaded) process. `mode`: `wait` (our stdio,
/// passed through), `tty` (a terminal in the container, relayed to our stdio) or
/// `detach` (started, not waited for).
fn exec_helper(run: &Path, id: &str, process_json: &str, mode: &str) -> i32 {
    let proc: oci_spec::runtime::Process = match serde_json::from_str(process_json) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth-monitor exec: bad process: {e}");
            return 125;
        }
    };
    let rt = Runtime::new(runtime_root(run)).quiet();
    if mode == "tty" {
        return exec_tty::run(&rt, run, id, &proc);
    }
    match rt.exec(id, &proc, mode != "detach") {
        Ok(ExecResult::Exited(c)) => c,
        Ok(ExecResult::Started(_)) => 0,
        Err(e) => {
            eprintln!("berth: exec failed: {e}");
            126
        }
    }
}

/// The monitor proper. Reports `ok PID` or `error MESSAGE` on fd 1 once the
/// container started (or failed to), then supervises until the container is gone.
/// With `wait_attach`, reports once the container is created; it starts when the
/// first client attaches (or after [`ATTACH_WAIT`]).
fn run(root: &Path, run: &Path, id: &str, wait_attach: bool) -> i32 {
    // Detach: the first process exits at once (the caller waits for it), the second
    // lives on in its own session.
    // SAFETY: single-threaded (main of a fresh process).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => {
            println!("error cannot fork the monitor: {e}");
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let _ = std::env::set_current_dir("/");
    // SAFETY: dup of fd 1, which we hold.
    let report = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    let mut report = (report >= 0).then(|| std::fs::File::from(unsafe { stdio::own(report) }));
    let mut say = |msg: &str| {
        if let Some(mut r) = report.take() {
            let _ = writeln!(r, "{msg}");
        }
    };
    let store = Store::new(root, run);
    let rundir = store.run_dir(id);
    let setup = (|| -> Result<Monitor, String> {
        std::fs::create_dir_all(&rundir).map_err(|e| format!("{}: {e}", rundir.display()))?;
        let null = stdio::devnull().map_err(|e| e.to_string())?;
        let mlog = std::fs::File::options()
            .create(true)
            .append(true)
            .open(rundir.join(MONITOR_LOG))
            .map_err(|e| e.to_string())?;
        // SAFETY: dup2 onto our own stdio.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(mlog.as_raw_fd(), 2);
        }
        Monitor::new(store.clone(), run, id)
    })();
    let mut m = match setup {
        Ok(m) => m,
        Err(e) => {
            say(&format!("error {e}"));
            return 1;
        }
    };
    let started = if wait_attach {
        m.create_container().and_then(|()| {
            m.start_pending = Some(Instant::now() + ATTACH_WAIT);
            m.mark_running()
        })
    } else {
        m.start_container()
    };
    if let Err(e) = started {
        let _ = m.store.update(id, |r| {
            r.status = Status::Exited;
            r.error = Some(e.clone());
            r.exit_code = Some(127);
            r.finished_at = Some(SystemTime::now());
            r.monitor_pid = 0;
        });
        m.cleanup();
        say(&format!("error {e}"));
        return 1;
    }
    say(&format!(
        "ok {}",
        m.child.as_ref().map(|c| c.pid).unwrap_or(0)
    ));
    // One monitor per container: keep resident only what supervision needs.
    shed::shed_startup_pages();
    m.run_loop();
    m.cleanup();
    0
}

struct Child {
    pid: i32,
    started: Instant,
}

/// A raw attach client (see [`frames`]).
struct Client {
    sock: UnixStream,
    /// Frames not yet written to it.
    out: Vec<u8>,
    frames: frames::Decoder,
    stdin_once: bool,
}

struct Probe {
    pid: i32,
    start: SystemTime,
    deadline: Instant,
    out: OwnedFd,
    buf: Vec<u8>,
    timed_out: bool,
}

struct Monitor {
    store: Store,
    id: String,
    rt: Runtime,
    cfg: ContainerConfig,
    log: LogWriter,
    pipes: [(OwnedFd, OwnedFd); 2],
    /// With `tty`: the pty master, read as the container's stdout.
    tty: Option<OwnedFd>,
    null: OwnedFd,
    listener: UnixListener,
    sigfd: SignalFd,
    child: Option<Child>,
    /// Set by stop (and kill): no restart follows, whatever the policy.
    stop_requested: bool,
    kill_at: Option<Instant>,
    restart_at: Option<Instant>,
    /// Restarts since the container last ran long enough to reset the back-off.
    quick_restarts: u32,
    restarts: u32,
    attached: Vec<UnixStream>,
    clients: Vec<Client>,
    /// With `stdin_open` and no `tty`: the container's stdin (read end, kept for
    /// restarts) and our side of it (non-blocking; dropped to close it).
    stdin_r: Option<OwnedFd>,
    stdin_w: Option<OwnedFd>,
    /// Bytes from clients not yet taken by the container.
    stdin_buf: Vec<u8>,
    /// A client closed stdin: no more input; the pipe closes once `stdin_buf` is out.
    stdin_closed: bool,
    /// Created, waiting for the first attach until then.
    start_pending: Option<Instant>,
    health: Option<health::HealthPlan>,
    next_probe: Option<Instant>,
    probe: Option<Probe>,
    paused: bool,
    done: bool,
}

impl Monitor {
    fn new(store: Store, run: &Path, id: &str) -> Result<Monitor, String> {
        let rec = store.load(id).map_err(|e| e.to_string())?;
        let cfg = rec.config.clone();
        let sock = store.run_dir(id).join(CONTROL_SOCK);
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock)
            .map_err(|e| format!("binding the control socket {}: {e}", sock.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let log = LogWriter::open(
            &store.dir(id).join(CONTAINER_LOG),
            cfg.log.max_size,
            cfg.log.max_file,
        )
        .map_err(|e| format!("opening the log: {e}"))?;
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        mask.thread_block().map_err(|e| e.to_string())?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| e.to_string())?;
        let pipes = [
            stdio::pipe().map_err(|e| e.to_string())?,
            stdio::pipe().map_err(|e| e.to_string())?,
        ];
        let (stdin_r, stdin_w) = if cfg.stdin_open && !cfg.tty {
            let (r, w) = stdio::stdin_pipe().map_err(|e| e.to_string())?;
            (Some(r), Some(w))
        } else {
            (None, None)
        };
        let me = std::process::id() as i32;
        // Only `Engine::start` runs a monitor: a start wants the container running and
        // counts its restarts from zero.
        let restarts = 0;
        store
            .update(id, |r| {
                r.monitor_pid = me;
                r.monitor_start = crate::state::process_start(me).unwrap_or(0);
                r.error = None;
                r.desired_running = true;
                r.restart_count = 0;
            })
            .map_err(|e| e.to_string())?;
        Ok(Monitor {
            rt: Runtime::new(runtime_root(run)).quiet(),
            health: health::plan(&cfg),
            cfg,
            store,
            id: id.to_string(),
            log,
            pipes,
            tty: None,
            null: stdio::devnull().map_err(|e| e.to_string())?,
            listener,
            sigfd,
            child: None,
            stop_requested: false,
            kill_at: None,
            restart_at: None,
            quick_restarts: 0,
            restarts,
            attached: vec![],
            clients: vec![],
            stdin_r,
            stdin_w,
            stdin_buf: vec![],
            stdin_closed: false,
            start_pending: None,
            next_probe: None,
            probe: None,
            paused: false,
            done: false,
        })
    }

    fn stop_signal(&self) -> Signal {
        self.cfg
            .stop_signal
            .as_deref()
            .or(self.cfg.image.stop_signal.as_deref())
            .and_then(parse_signal)
            .unwrap_or(Signal::SIGTERM)
    }

    /// Runtime create + start with the log pipes as the container's stdio.
    fn start_container(&mut self) -> Result<(), String> {
        self.create_container()?;
        self.begin()
    }

    /// Runtime create: the container's process exists and waits for [`Self::begin`].
    fn create_container(&mut self) -> Result<(), String> {
        // Leftovers of an earlier run (a restart, or a monitor that died) go first.
        let _ = self.rt.delete(&self.id, true);
        // With a terminal, the runtime hands the pty master over a console socket.
        let console = if self.cfg.tty {
            let p = self.store.run_dir(&self.id).join("console.sock");
            let _ = std::fs::remove_file(&p);
            let l = UnixListener::bind(&p)
                .map_err(|e| format!("binding the console socket {}: {e}", p.display()))?;
            Some((p, l))
        } else {
            None
        };
        let opts = CreateOptions {
            id: self.id.clone(),
            bundle: self.store.dir(&self.id),
            console_socket: console.as_ref().map(|c| c.0.clone()),
            ..Default::default()
        };
        let fds = [
            self.stdin_r.as_ref().unwrap_or(&self.null).as_raw_fd(),
            self.pipes[0].1.as_raw_fd(),
            self.pipes[1].1.as_raw_fd(),
        ];
        let created = stdio::with_stdio(fds, || self.rt.create(&opts)).map_err(|e| e.to_string());
        if let Some((p, _)) = &console {
            let _ = std::fs::remove_file(p);
        }
        let rec = created?;
        if let Some((_, l)) = console {
            match stdio::recv_fd(&l) {
                Ok(fd) => {
                    let _ = stdio::set_nonblocking(fd.as_raw_fd());
                    self.tty = Some(fd);
                }
                Err(e) => {
                    let _ = self.rt.delete(&self.id, true);
                    return Err(format!("receiving the terminal from the container: {e}"));
                }
            }
        }
        self.child = Some(Child {
            pid: rec.pid,
            started: Instant::now(),
        });
        Ok(())
    }

    /// Runtime start: the created container's program runs.
    fn begin(&mut self) -> Result<(), String> {
        self.start_pending = None;
        if let Err(e) = self.rt.start(&self.id) {
            let _ = self.rt.delete(&self.id, true);
            return Err(e.to_string());
        }
        if let Some(c) = &mut self.child {
            c.started = Instant::now();
        }
        self.mark_running()?;
        self.next_probe = self.health.as_ref().map(|h| {
            Instant::now()
                + if h.start_period.is_zero() {
                    h.interval.min(h.start_interval)
                } else {
                    h.start_interval
                }
        });
        Ok(())
    }

    /// The record says running, with the container's pid.
    fn mark_running(&mut self) -> Result<(), String> {
        let now = SystemTime::now();
        let pid = self.child.as_ref().map_or(0, |c| c.pid);
        let restarts = self.restarts;
        let has_health = self.health.is_some();
        self.store
            .update(&self.id, |r| {
                r.status = Status::Running;
                r.pid = pid;
                r.started_at = Some(now);
                r.exit_code = None;
                r.error = None;
                r.restart_count = restarts;
                r.health = has_health.then(health::initial);
            })
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn run_loop(&mut self) {
        // Small: the loop drains until EAGAIN, and this stays resident all along.
        let mut buf = vec![0u8; 16 * 1024];
        while !self.done {
            let now = Instant::now();
            let deadline = [
                self.start_pending,
                self.kill_at,
                self.restart_at,
                self.next_probe
                    .filter(|_| self.child.is_some() && self.probe.is_none() && !self.paused),
                self.probe.as_ref().map(|p| p.deadline),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = match deadline {
                Some(d) => PollTimeout::try_from(
                    d.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1,
                )
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let (n_out, n_err, n_sig, n_lis) = (0, 1, 2, 3);
            // A raw client far behind: leave the output in the pipe for now.
            let output = if self.clients.iter().any(|c| c.out.len() > CLIENT_BACKLOG) {
                PollFlags::empty()
            } else {
                PollFlags::POLLIN
            };
            let mut fds = vec![
                PollFd::new(
                    self.tty
                        .as_ref()
                        .map_or(self.pipes[0].0.as_fd(), |t| t.as_fd()),
                    output,
                ),
                PollFd::new(self.pipes[1].0.as_fd(), output),
                PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            let n_probe = fds.len();
            if let Some(p) = &self.probe {
                fds.push(PollFd::new(p.out.as_fd(), PollFlags::POLLIN));
            }
            let n_stdin = fds.len();
            if let Some(fd) = self.stdin_target().filter(|_| !self.stdin_buf.is_empty()) {
                fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            }
            let n_clients = fds.len();
            let take_input = self.stdin_buf.len() < STDIN_BACKLOG;
            for c in &self.clients {
                let mut f = PollFlags::empty();
                if take_input {
                    f |= PollFlags::POLLIN;
                }
                if !c.out.is_empty() {
                    f |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(c.sock.as_fd(), f));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("berth-monitor: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (r_out, r_err, r_sig, r_lis) =
                (ready(n_out), ready(n_err), ready(n_sig), ready(n_lis));
            let r_probe = self.probe.is_some() && ready(n_probe);
            let r_stdin = n_stdin < n_clients && ready(n_stdin);
            let r_clients: Vec<PollFlags> = fds[n_clients..]
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(fds);
            if r_stdin {
                self.flush_stdin();
            }
            if r_clients.iter().any(|r| !r.is_empty()) {
                self.serve_clients(&r_clients, take_input);
            }
            if r_out {
                self.drain(Stream::Stdout, &mut buf);
            }
            if r_err {
                self.drain(Stream::Stderr, &mut buf);
            }
            if r_probe {
                self.read_probe();
            }
            if r_sig {
                self.on_signals(&mut buf);
            }
            if r_lis {
                self.accept();
            }
            self.timers();
        }
    }

    fn drain(&mut self, s: Stream, buf: &mut [u8]) {
        let fd = match (&self.tty, s) {
            (Some(t), Stream::Stdout) => t.as_raw_fd(),
            _ => self.pipes[s as usize].0.as_raw_fd(),
        };
        loop {
            let n = match stdio::read_some(fd, buf) {
                Ok(Some(n)) if n > 0 => n,
                Ok(Some(_)) => break,
                // EOF or EIO: every holder of the terminal's other side closed it.
                Ok(None) | Err(_) => {
                    if self.tty.as_ref().is_some_and(|t| t.as_raw_fd() == fd) {
                        self.tty = None;
                    }
                    break;
                }
            };
            self.send_frame(
                if s == Stream::Stderr {
                    frames::STDERR
                } else {
                    frames::STDOUT
                },
                &buf[..n],
            );
            match self.log.write(s, &buf[..n]) {
                Ok(recs) => self.broadcast(&recs),
                Err(e) => eprintln!("berth-monitor: writing the log: {e}"),
            }
        }
    }

    /// Queues a frame for every raw client and writes what they take now.
    fn send_frame(&mut self, kind: u8, data: &[u8]) {
        for c in &mut self.clients {
            frames::put(&mut c.out, kind, data);
        }
        self.serve_clients(&vec![PollFlags::POLLOUT; self.clients.len()], false);
    }

    /// Where clients' stdin bytes go: the terminal, or our end of the stdin pipe.
    fn stdin_target(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.tty
            .as_ref()
            .or(self.stdin_w.as_ref())
            .map(|f| f.as_fd())
    }

    /// Writes what the container takes of the held stdin; closes the pipe after the
    /// last byte once a client closed stdin.
    fn flush_stdin(&mut self) {
        match self.tty.as_ref().or(self.stdin_w.as_ref()) {
            // A failed write means the terminal went with the container: nothing to keep.
            Some(fd) => _ = relay::write_some(fd.as_fd(), &mut self.stdin_buf),
            None => self.stdin_buf.clear(),
        }
        if self.stdin_closed && self.stdin_buf.is_empty() {
            self.stdin_w = None;
        }
    }

    /// No more stdin: EOF for a pipe (once what is held got out), Ctrl-D for a
    /// terminal, as `exec` does when its stdin ends.
    fn close_stdin(&mut self) {
        if self.stdin_closed {
            return;
        }
        self.stdin_closed = true;
        if self.tty.is_some() {
            self.stdin_buf.push(4);
        }
        self.flush_stdin();
    }

    /// Writes queued frames to the clients that can take them (`ready` per client,
    /// from poll) and reads what they sent when `read` (stdin has room). A client that
    /// hung up or broke the protocol is dropped.
    fn serve_clients(&mut self, ready: &[PollFlags], read: bool) {
        let mut buf = [0u8; 8192];
        let mut gone = vec![];
        let mut input = vec![];
        for (i, c) in self.clients.iter_mut().enumerate() {
            let r = ready.get(i).copied().unwrap_or(PollFlags::empty());
            if r.is_empty() {
                continue;
            }
            let mut alive = relay::write_some(c.sock.as_fd(), &mut c.out);
            let hup = r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
            if alive && (r.contains(PollFlags::POLLIN) && read || hup) {
                match (&c.sock).read(&mut buf) {
                    Ok(0) => alive = false,
                    Ok(n) => {
                        c.frames.push(&buf[..n]);
                        loop {
                            match c.frames.next_frame() {
                                Ok(Some(f)) => input.push(f),
                                Ok(None) => break,
                                Err(_) => {
                                    alive = false;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => alive = false,
                }
            }
            if !alive {
                gone.push(i);
            }
        }
        for (kind, payload) in input {
            match kind {
                frames::STDIN if self.cfg.stdin_open && !self.stdin_closed => {
                    self.stdin_buf.extend_from_slice(&payload);
                    self.flush_stdin();
                }
                frames::CLOSE_STDIN => self.close_stdin(),
                frames::RESIZE => {
                    if let Some((rows, cols)) = frames::size_of(&payload) {
                        self.resize(rows, cols);
                    }
                }
                _ => {}
            }
        }
        for i in gone.into_iter().rev() {
            let c = self.clients.remove(i);
            if c.stdin_once {
                self.close_stdin();
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        if let Some(t) = &self.tty {
            relay::set_size(t.as_fd(), rows, cols);
        }
    }

    fn broadcast(&mut self, data: &[u8]) {
        if data.is_empty() || self.attached.is_empty() {
            return;
        }
        // A client that cannot keep up is dropped rather than stalling the container.
        self.attached.retain_mut(|c| c.write_all(data).is_ok());
    }

    fn read_probe(&mut self) {
        if let Some(p) = &mut self.probe {
            let mut b = [0u8; 4096];
            while let Ok(Some(n)) = stdio::read_some(p.out.as_raw_fd(), &mut b) {
                if n == 0 {
                    break;
                }
                let room = 4096usize.saturating_sub(p.buf.len());
                p.buf.extend_from_slice(&b[..n.min(room)]);
            }
        }
    }

    fn on_signals(&mut self, buf: &mut [u8]) {
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            let sig = si.ssi_signo as i32;
            if sig == libc::SIGTERM || sig == libc::SIGINT || sig == libc::SIGHUP {
                // Someone stops the monitor itself: stop the container with it.
                self.request_stop(self.grace());
            }
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, c)) => self.reaped(pid.as_raw(), c, buf),
                Ok(WaitStatus::Signaled(pid, s, _)) => {
                    self.reaped(pid.as_raw(), 128 + s as i32, buf)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    fn grace(&self) -> Duration {
        self.cfg
            .stop_grace_period
            .unwrap_or(Duration::from_secs(10))
    }

    fn reaped(&mut self, pid: i32, code: i32, buf: &mut [u8]) {
        if self.probe.as_ref().is_some_and(|p| p.pid == pid) {
            self.probe_done(code);
            return;
        }
        if self.child.as_ref().is_none_or(|c| c.pid != pid) {
            return; // an orphan that came to us (exec helpers' children)
        }
        let ran = self
            .child
            .take()
            .map(|c| c.started.elapsed())
            .unwrap_or_default();
        self.drain(Stream::Stdout, buf);
        self.drain(Stream::Stderr, buf);
        if let Ok(recs) = self.log.flush_partial() {
            self.broadcast(&recs);
        }
        self.tty = None;
        if let Some(p) = self.probe.take() {
            let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        self.kill_at = None;
        self.paused = false;
        // Removes the cgroup and anything left in it; the log stays.
        if let Err(e) = self.rt.delete(&self.id, true) {
            eprintln!("berth-monitor: cleaning up after exit: {e}");
        }
        if ran >= BACKOFF_RESET {
            self.quick_restarts = 0;
        }
        // unless-stopped: a `berth stop` (desired_running false) is final, also across
        // monitors; a stop request to this monitor always wins.
        let restart = !self.stop_requested
            && should_restart(self.cfg.restart, code, self.restarts)
            && (self.cfg.restart != RestartPolicy::UnlessStopped || self.desired_running());
        let now = SystemTime::now();
        let _ = self.store.update(&self.id, |r| {
            r.exit_code = Some(code);
            r.finished_at = Some(now);
            r.pid = 0;
            r.status = if restart {
                Status::Restarting
            } else {
                Status::Exited
            };
            if let Some(h) = &mut r.health {
                if !restart {
                    h.status = HealthStatus::Unhealthy;
                }
            }
        });
        if restart {
            self.restart_at = Some(Instant::now() + backoff(self.quick_restarts));
            self.quick_restarts += 1;
        } else {
            self.done = true;
            self.send_frame(frames::EXIT, &code.to_be_bytes());
        }
    }

    fn desired_running(&self) -> bool {
        self.store
            .load(&self.id)
            .map(|r| r.desired_running)
            .unwrap_or(false)
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if self.kill_at.is_some_and(|t| now >= t) {
            self.kill_at = None;
            if self.child.is_some() {
                let _ = self.rt.kill(&self.id, Signal::SIGKILL, true);
            }
        }
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.restarts += 1;
            let started = self.start_container();
            shed::shed_startup_pages();
            if let Err(e) = started {
                self.start_failed(e);
            }
        }
        if self.start_pending.is_some_and(|t| now >= t) {
            // Nobody came: run it anyway, with nothing to read.
            self.close_stdin();
            if let Err(e) = self.begin() {
                self.start_failed(e);
            }
        }
        if let Some(p) = &mut self.probe {
            if now >= p.deadline && !p.timed_out {
                p.timed_out = true;
                // The probe dies, never the container.
                let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), Signal::SIGKILL);
                p.deadline = now + Duration::from_secs(5);
            }
        }
        if self.probe.is_none()
            && !self.paused
            && self.child.is_some()
            && self.next_probe.is_some_and(|t| now >= t)
        {
            self.start_probe();
        }
    }

    /// A start that failed counts as an exit with 127 (the command could not run).
    fn start_failed(&mut self, e: String) {
        eprintln!("berth-monitor: start failed: {e}");
        let restarts = self.restarts;
        let _ = self.store.update(&self.id, |r| {
            r.error = Some(e.clone());
            r.exit_code = Some(127);
            r.restart_count = restarts;
        });
        let mut b = [];
        self.child = Some(Child {
            pid: -2,
            started: Instant::now(),
        });
        self.reaped(-2, 127, &mut b);
    }

    fn in_start_period(&self) -> bool {
        match (&self.health, &self.child) {
            (Some(h), Some(c)) => c.started.elapsed() < h.start_period,
            _ => false,
        }
    }

    fn start_probe(&mut self) {
        let Some(plan) = self.health.clone() else {
            return;
        };
        self.next_probe = None;
        let start = SystemTime::now();
        let fail = |m: &mut Monitor, msg: String| {
            m.probe_result(ProbeResult {
                start,
                end: SystemTime::now(),
                exit_code: -1,
                output: msg,
            })
        };
        let process = match crate::container::spec::exec_process(
            &self.cfg,
            &crate::container::config::ExecConfig {
                args: plan.args.clone(),
                ..Default::default()
            },
        )
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| crate::container::EngineError::InvalidConfig {
                field: "healthcheck".into(),
                problem: e.to_string(),
            })
        }) {
            Ok(p) => p,
            Err(e) => return fail(self, e.to_string()),
        };
        let (r, w) = match stdio::pipe() {
            Ok(p) => p,
            Err(e) => return fail(self, e.to_string()),
        };
        let fds = [self.null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()];
        let res = stdio::with_stdio(fds, || self.rt.exec(&self.id, &process, false));
        drop(w);
        match res {
            Ok(ExecResult::Started(pid)) => {
                self.probe = Some(Probe {
                    pid,
                    start,
                    deadline: Instant::now() + plan.timeout,
                    out: r,
                    buf: vec![],
                    timed_out: false,
                })
            }
            Ok(ExecResult::Exited(c)) => fail(self, format!("probe exited with {c}")),
            Err(e) => fail(self, format!("cannot run the probe: {e}")),
        }
    }

    fn probe_done(&mut self, code: i32) {
        self.read_probe();
        let Some(p) = self.probe.take() else { return };
        let timeout = self.health.as_ref().map(|h| h.timeout).unwrap_or_default();
        let (exit_code, output) = if p.timed_out {
            (-1, format!("Health check exceeded timeout ({timeout:?})"))
        } else {
            (code, String::from_utf8_lossy(&p.buf).into_owned())
        };
        self.probe_result(ProbeResult {
            start: p.start,
            end: SystemTime::now(),
            exit_code,
            output,
        });
        // Running the probe (a runtime exec) touched code the loop does not need.
        shed::shed_startup_pages();
    }

    fn probe_result(&mut self, r: ProbeResult) {
        let Some(plan) = self.health.clone() else {
            return;
        };
        let isp = self.in_start_period();
        let h = self
            .store
            .update(&self.id, |rec| {
                let h = rec.health.get_or_insert_with(health::initial);
                health::record(h, &plan, isp, r);
                h.clone()
            })
            .ok();
        if self.child.is_some() {
            let delay = h
                .map(|h| health::next_delay(&h, &plan, isp))
                .unwrap_or(plan.interval);
            self.next_probe = Some(Instant::now() + delay);
        }
    }

    fn request_stop(&mut self, timeout: Duration) {
        self.stop_requested = true;
        let _ = self.store.update(&self.id, |r| r.desired_running = false);
        self.restart_at = None;
        if self.child.is_none() {
            // Waiting out a back-off: nothing runs, so we are done.
            let _ = self.store.update(&self.id, |r| r.status = Status::Exited);
            self.done = true;
            return;
        }
        if self.paused {
            let _ = self.set_paused(false);
        }
        // A container still waiting to start is PID 1 with no handler yet: only
        // SIGKILL ends it.
        let sig = if timeout.is_zero() || self.start_pending.take().is_some() {
            Signal::SIGKILL
        } else {
            self.stop_signal()
        };
        let _ = self.rt.kill(&self.id, sig, false);
        self.kill_at = Some(Instant::now() + timeout);
    }

    fn set_paused(&mut self, on: bool) -> Result<(), String> {
        if self.child.is_none() {
            return Err("the container is not running".into());
        }
        let mgr = crate::cgroups::host_manager(&format!("/berth-{}", self.id))
            .map_err(|e| e.to_string())?;
        if on { mgr.freeze() } else { mgr.thaw() }.map_err(|e| e.to_string())?;
        self.paused = on;
        let _ = self.store.update(&self.id, |r| {
            r.status = if on { Status::Paused } else { Status::Running }
        });
        if !on && self.health.is_some() && self.next_probe.is_none() && self.probe.is_none() {
            self.next_probe = Some(Instant::now());
        }
        Ok(())
    }

    fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            let mut line = Vec::new();
            let mut r = BufReader::new((&s).take(64 * 1024));
            if r.read_until(b'\n', &mut line).is_err() {
                continue;
            }
            let req: Result<Request, _> = serde_json::from_slice(&line);
            let mut resp = Response {
                ok: true,
                ..Default::default()
            };
            let mut attach = None;
            match req {
                Err(e) => {
                    resp.ok = false;
                    resp.error = Some(format!("bad request: {e}"));
                }
                Ok(Request::Status) => {}
                Ok(Request::Stop { timeout_ms }) => {
                    self.request_stop(Duration::from_millis(timeout_ms))
                }
                Ok(Request::Kill { signal }) => match (Signal::try_from(signal), &self.child) {
                    (Err(_), _) => {
                        resp.ok = false;
                        resp.error = Some(format!("{signal} is not a signal"));
                    }
                    (_, None) => {
                        resp.ok = false;
                        resp.error = Some("the container is not running".into());
                    }
                    (Ok(sig), Some(c)) => {
                        if sig == Signal::SIGKILL || sig == self.stop_signal() {
                            self.stop_requested = true;
                            let _ = self.store.update(&self.id, |r| r.desired_running = false);
                        }
                        if let Err(e) = nix::sys::signal::kill(Pid::from_raw(c.pid), sig) {
                            resp.ok = false;
                            resp.error = Some(format!("kill: {e}"));
                        }
                    }
                },
                Ok(Request::Pause) => {
                    if let Err(e) = self.set_paused(true) {
                        resp.ok = false;
                        resp.error = Some(e);
                    }
                }
                Ok(Request::Unpause) => {
                    if let Err(e) = self.set_paused(false) {
                        resp.ok = false;
                        resp.error = Some(e);
                    }
                }
                Ok(Request::Attach {
                    raw,
                    stdin_once,
                    size,
                }) => attach = Some((raw, stdin_once, size)),
            }
            resp.pid = self.child.as_ref().map(|c| c.pid).unwrap_or(0);
            resp.status = Some(if self.paused {
                Status::Paused
            } else if self.child.is_some() {
                Status::Running
            } else if self.restart_at.is_some() {
                Status::Restarting
            } else {
                Status::Exited
            });
            let mut out = serde_json::to_vec(&resp).expect("responses serialise");
            out.push(b'\n');
            if (&s).write_all(&out).is_err() {
                continue;
            }
            match attach {
                Some((true, stdin_once, size)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock: s,
                        out: vec![],
                        frames: frames::Decoder::default(),
                        stdin_once,
                    });
                    if let Some((rows, cols)) = size {
                        self.resize(rows, cols);
                    }
                }
                Some((false, ..)) => {
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    self.attached.push(s);
                }
                None => continue,
            }
            if self.start_pending.is_some() {
                let started = self.begin();
                shed::shed_startup_pages();
                if let Err(e) = started {
                    self.start_failed(e);
                }
            }
        }
    }

    /// The container is gone for good: what raw clients are owed goes out (waiting
    /// for a slow reader, within reason), socket away, runtime state away.
    fn cleanup(&mut self) {
        for c in self.clients.drain(..) {
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(30)));
            let _ = (&c.sock).write_all(&c.out);
        }
        let me = std::process::id() as i32;
        // All of it only while no newer monitor took the record over.
        let ours = self.store.load(&self.id).is_ok_and(|r| r.monitor_pid == me);
        if ours {
            let _ = std::fs::remove_file(self.store.run_dir(&self.id).join(CONTROL_SOCK));
            let _ = self.rt.delete(&self.id, true);
        }
        let _ = self.store.update(&self.id, |r| {
            if r.monitor_pid == me {
                r.monitor_pid = 0;
                r.monitor_start = 0;
                if matches!(
                    r.status,
                    Status::Running | Status::Paused | Status::Restarting
                ) {
                    r.status = Status::Exited;
                }
            }
        });
        self.attached.clear();
    }
}

/// For the caller: waits for the monitor's report on `r` (`ok PID` / `error MSG`).
pub fn read_report(r: impl std::io::Read) -> Result<i32, String> {
    let mut line = String::new();
    let _ = BufReader::new(r).read_line(&mut line);
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("ok ") {
        return Ok(pid.parse().unwrap_or(0));
    }
    Err(match line.strip_prefix("error ") {
        Some(m) => m.to_string(),
        None => "the monitor exited without reporting (see its monitor.log under BERTH_RUN)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_rules() {
        let of = |m| RestartPolicy::OnFailure { max_retries: m };
        assert!(!should_restart(RestartPolicy::No, 1, 0));
        assert!(should_restart(RestartPolicy::Always, 0, 100));
        assert!(!should_restart(of(Some(3)), 0, 0));
        assert!(should_restart(of(Some(3)), 1, 2));
        assert!(!should_restart(of(Some(3)), 1, 3));
        assert!(should_restart(of(None), 1, 1000));
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("SIGKILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("term"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("nope"), None);
    }
}
