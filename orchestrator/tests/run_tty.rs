//! `berth run` attached, as `docker compose run` is: under a terminal the command gets
//! one (keys, Ctrl-C included, reach it as bytes; its size follows ours; our terminal
//! goes back to how it was; the exit code is the command's), and without one our stdin
//! is piped to it until EOF, its stdout and stderr kept apart. Also: `-i=false`, `-d`,
//! and services with `stdin_open: true` / `tty: true` under `up`. Real kernel, as root,
//! busybox image; subnets in 10.231.0.0/16; each test ends with `down` and the leak
//! check.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{pty_read_until, pty_wait_exit, subnet_in, wait_for, Stack};
use nix::sys::termios::{tcgetattr, LocalFlags};

fn stack(project: &str, seed: u32, services: &str) -> Stack {
    let net = subnet_in(231, seed);
    Stack::new(
        project,
        &format!(
            "services:\n{services}networks:\n  default:\n    ipam:\n      config: [{{subnet: {net}}}]\n"
        ),
    )
}

const SVC: &str = "  svc:\n    image: busybox:latest\n    command: [sleep, '3600']\n";

/// The `berth-monitor attach` helper that berth `pid` runs.
fn attach_helper(pid: u32) -> nix::unistd::Pid {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let kids = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for kid in kids.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{kid}/cmdline")).unwrap_or_default();
            if cmdline.split(|&b| b == 0).any(|a| a == b"attach") {
                return nix::unistd::Pid::from_raw(kid.parse().unwrap());
            }
        }
    }
    panic!("berth {pid} runs no attach helper");
}

fn set_size(fd: &impl AsRawFd, rows: u16, cols: u16) {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a winsize we own.
    assert_eq!(
        unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) },
        0
    );
}

#[test]
fn run_under_a_terminal_relays_keys_size_and_exit_code() {
    let s = stack("runtty1", 1, SVC);
    let size = nix::pty::Winsize {
        ws_row: 33,
        ws_col: 77,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave: OwnedFd = pty.slave;
    let before = tcgetattr(slave.as_fd()).unwrap();
    assert!(before.local_flags.contains(LocalFlags::ICANON));
    // What the command writes first is not lost to the attach.
    let mut cmd = s.command(&[
        "run",
        "--rm",
        "svc",
        "sh",
        "-c",
        "echo early-$((1+1)); exec sh",
    ]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // The terminal is berth's controlling terminal, as in a shell: resizing it sends
    // SIGWINCH to berth's process group.
    // SAFETY: setsid and an ioctl on fd 0 between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    // Our terminal goes raw once the container is attached.
    wait_for("raw mode on the test's terminal", || {
        !tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    });
    master
        .write_all(b"stty size; echo hello-$((6*7)) $TERM; tty\n")
        .unwrap();
    let out = pty_read_until(&mut master, "/dev/pts/");
    assert!(out.contains("early-2"), "{out}");
    assert!(out.contains("hello-42 xterm"), "{out}");
    assert!(out.contains("33 77"), "the terminal's size at start: {out}");

    // A resize reaches the container's terminal.
    set_size(&master, 40, 100);
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(b"stty size\n").unwrap();
    pty_read_until(&mut master, "40 100");

    // Ctrl-C is a byte for the container's terminal: it interrupts the foreground
    // command there, and the shell (and berth) go on.
    master.write_all(b"sleep 60\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    master.write_all(b"\x03").unwrap();
    master.write_all(b"echo after-$((2+3))\n").unwrap();
    pty_read_until(&mut master, "after-5");
    assert!(child.try_wait().unwrap().is_none(), "berth ended on Ctrl-C");

    master.write_all(b"exit 3\n").unwrap();
    assert_eq!(pty_wait_exit(&mut child, &mut master), 3);
    // Our terminal is as it was.
    let after = tcgetattr(slave.as_fd()).unwrap();
    assert_eq!(after.local_flags, before.local_flags);
    assert_eq!(after.input_flags, before.input_flags);

    // Ctrl-D ends the shell like at any terminal; the code is 0.
    let mut cmd = s.command(&["run", "--rm", "svc", "sh"]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    wait_for("raw mode again", || {
        !tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    });
    master.write_all(b"\x04").unwrap();
    assert_eq!(pty_wait_exit(&mut child, &mut master), 0);

    // The relay told to end (SIGTERM, as SIGHUP when the terminal goes) puts our
    // terminal back; the shell inside sees its input end, and berth ends with it.
    let mut cmd = s.command(&["run", "--rm", "svc", "sh"]);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    wait_for("raw mode a third time", || {
        !tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    });
    let relay = attach_helper(child.id());
    nix::sys::signal::kill(relay, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("the terminal back in cooked mode", || {
        tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    });
    assert_eq!(pty_wait_exit(&mut child, &mut master), 0);

    let ps = s.ok(&["ps", "-a"]);
    assert!(!ps.contains("-run-"), "run --rm left its container:\n{ps}");
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

/// `berth run ARGS` with `input` on its stdin: (exit code, stdout, stderr).
fn run_piped(s: &Stack, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = s
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A thread: a command that echoes must be read while it is written to.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_without_a_terminal_pipes_stdin_until_eof() {
    let s = stack("runtty2", 2, SVC);
    let (code, out, err) = run_piped(
        &s,
        &["run", "--rm", "-T", "svc", "sh", "-c", "wc -l"],
        b"a\nb\n",
    );
    assert_eq!((code, out.trim()), (0, "2"), "{err}");
    let (code, out, err) = run_piped(
        &s,
        &[
            "run",
            "--rm",
            "-T",
            "svc",
            "sh",
            "-c",
            "read x; echo got-$x",
        ],
        b"hi\n",
    );
    assert_eq!((code, out.as_str()), (0, "got-hi\n"), "{err}");
    // No -T, but stdin is a pipe: no terminal either; stdout and stderr stay apart.
    let (code, out, err) = run_piped(
        &s,
        &[
            "run",
            "--rm",
            "svc",
            "sh",
            "-c",
            "cat; [ -t 0 ] || echo no-tty; echo oops >&2; exit 4",
        ],
        b"piped\n",
    );
    assert_eq!((code, out.as_str()), (4, "piped\nno-tty\n"), "{err}");
    assert!(err.contains("oops"), "{err}");
    // -i=false: the command's stdin is empty, whatever ours holds.
    let (code, out, _) = run_piped(
        &s,
        &[
            "run",
            "--rm",
            "-i=false",
            "svc",
            "sh",
            "-c",
            "cat; echo end",
        ],
        b"not-for-you\n",
    );
    assert_eq!((code, out.as_str()), (0, "end\n"));
    // Much more than a pipe holds, both ways at once: nothing lost, nothing stuck.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (code, out, err) = run_piped(&s, &["run", "--rm", "-T", "svc", "cat"], &big);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.as_bytes() == big.as_slice(),
        "cat returned {} bytes",
        out.len()
    );

    // -d: prints the name and returns while the command runs.
    let started = Instant::now();
    let name = s.ok(&["run", "-d", "--name", "runtty2-bg", "svc", "sleep", "30"]);
    assert_eq!(name.trim(), "runtty2-bg");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(s.ok(&["ps"]).contains("runtty2-bg"));
    let ps = s.ok(&["ps", "-a"]);
    assert_eq!(
        ps.matches("-run-").count(),
        0,
        "run --rm left containers:\n{ps}"
    );
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}

#[test]
fn stdin_open_and_tty_services_keep_working_under_up() {
    let s = stack(
        "runtty3",
        3,
        "  keeper:\n    image: busybox:latest\n    command: [cat]\n    stdin_open: true\n  term:\n    image: busybox:latest\n    command: [sh, -c, 'tty; sleep 3600']\n    tty: true\n    stop_grace_period: 1s\n",
    );
    s.ok(&["up", "-d"]);
    wait_for("term's output", || {
        s.ok(&["logs", "term"]).contains("/dev/pts/0")
    });
    // `cat` with stdin open waits for input rather than reading EOF.
    std::thread::sleep(Duration::from_secs(1));
    let ps = s.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.contains("runtty3-keeper-1") && l.contains("running")),
        "{ps}"
    );
    // And a one-off of it reads ours.
    let (code, out, err) = run_piped(&s, &["run", "--rm", "-T", "keeper"], b"via-run\n");
    assert_eq!((code, out.as_str()), (0, "via-run\n"), "{err}");
    s.ok(&["down", "-t", "0"]);
    s.assert_nothing_left();
}
