//! `kiln login`: verify credentials against a registry, then store them in docker's config.json.
//!
//! The password comes from standard input: all of it with `--password-stdin`, or, when stdin is a terminal,
//! typed at a `Password:` prompt with echo off (as `docker login` asks). Never from the command line, never
//! echoed or printed.

use std::io::{BufRead, IsTerminal, Read};
use std::sync::OnceLock;

use crate::cli::LoginArgs;
use kiln_engine::events::Report;
use kiln_engine::{Client, login};
use kiln_engine::{Error, Result};

pub fn run(args: &LoginArgs, report: &Report) -> Result<()> {
    let stdin = std::io::stdin();
    let mut password = String::new();
    if args.password_stdin {
        stdin
            .lock()
            .read_to_string(&mut password)
            .map_err(|e| Error::io("standard input", e))?;
    } else if stdin.is_terminal() {
        password = prompt_hidden(&format!("Password for {}: ", args.username))?;
    } else {
        return Err(Error::Usage(
            "kiln login: standard input is not a terminal, so there is no one to ask for the password: pipe it \
             in with --password-stdin (`echo \"$TOKEN\" | kiln login … --password-stdin`)"
                .into(),
        ));
    }
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::Usage(if args.password_stdin {
            "kiln login: no password on standard input (pipe it in: `echo \"$TOKEN\" | kiln login …`)".into()
        } else {
            "kiln login: no password given".into()
        }));
    }
    let registry = kiln_engine::normalize_registry(&args.registry);
    let client = Client::new(args.registry_args.options(report, Some(&registry)))?;
    let stored = login(&client, &registry, &args.username, password, None)?;
    report.note(format_args!(
        "login to {registry} succeeded; credentials stored in {stored}"
    ));
    Ok(())
}

/// The terminal's settings before echo was turned off, for [`restore_on_interrupt`].
static SAVED: OnceLock<libc::termios> = OnceLock::new();

/// Ctrl-C at the prompt: give the terminal its echo back, then end as an interrupted program does.
extern "C" fn restore_on_interrupt(_: libc::c_int) {
    // SAFETY: tcsetattr, write, signal and raise are async-signal-safe; `SAVED` was set before the handler
    // was installed and is only read here.
    unsafe {
        if let Some(t) = SAVED.get() {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, t);
        }
        libc::write(libc::STDERR_FILENO, b"\n".as_ptr().cast(), 1);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::raise(libc::SIGINT);
    }
}

/// Ask on stderr and read one line from the terminal on stdin with echo off; echo is back on afterwards, also
/// after an error or Ctrl-C.
fn prompt_hidden(prompt: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it from a valid fd (stdin is a terminal here).
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(Error::io("standard input", std::io::Error::last_os_error()));
    }
    let _ = SAVED.set(term);
    let mut quiet = term;
    quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL);
    quiet.c_lflag |= libc::ICANON;
    let handler: extern "C" fn(libc::c_int) = restore_on_interrupt;
    // SAFETY: installing a handler that only calls async-signal-safe functions; settings of a valid fd.
    let previous = unsafe {
        let previous = libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        if libc::tcsetattr(fd, libc::TCSANOW, &quiet) != 0 {
            libc::signal(libc::SIGINT, previous);
            return Err(Error::io("standard input", std::io::Error::last_os_error()));
        }
        previous
    };
    crate::progress::prompt(prompt);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: restoring the settings read above on the same fd, then the previous SIGINT disposition.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &term);
        libc::signal(libc::SIGINT, previous);
    }
    crate::progress::end_prompt();
    read.map_err(|e| Error::io("standard input", e))?;
    Ok(line)
}
