//! [`PidFile`]: the mark a process leaves in a journal directory while it writes there.
//!
//! A journal has one writer: its LSNs, and the sequence numbers of the issuing engines whose
//! ledger events it holds, come from one process. Batch jobs that append to a journal (statement
//! runs posting a cycle's interest and fees) therefore run while the process that serves from it
//! is stopped, and both take the same pid file, so neither starts while the other runs. The
//! journal itself ([`super::FileJournal`]) does not lock its directory; the processes built on
//! it (`switch run`, `switch statements`, `issuer-sim` and `issuer-sim statements`) do, here.
//!
//! It is a guard against the common mistake, not a lock: a pid file left by a crash is taken
//! over once its process is gone (Linux `/proc`; elsewhere every holder counts as alive, and a
//! stale file must be removed by hand).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// `<name>` in a journal directory, holding this process's id, removed on drop.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Takes `dir/<name>` (creating `dir`), or says which live process of `program` holds it.
    pub fn take(dir: &Path, name: &str, program: &str) -> Result<PidFile, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(name);
        let me = std::process::id();
        // Two tries: the second after removing a pid file whose process is gone.
        for _ in 0..2 {
            match std::fs::File::create_new(&path) {
                Ok(mut f) => {
                    writeln!(f, "{me}").map_err(|e| format!("{}: {e}", path.display()))?;
                    return Ok(PidFile(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != me && alive(pid) => {
                            return Err(format!(
                                "{}: {program} process {pid} is using this journal; stop it first",
                                dir.display()
                            ));
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!("{}: cannot take {name}", dir.display()))
    }

    /// The pid file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let mine = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if mine {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Whether process `pid` runs. A zombie has exited: it does not count.
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.is_dir() {
        return true;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // The state follows the parenthesised command name: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_holder_refuses_a_gone_one_is_taken_over_and_drop_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pid");
        // The parent of this process is alive and is not this process.
        let parent = std::os::unix::process::parent_id();
        std::fs::write(&path, format!("{parent}\n")).expect("write");
        let e = PidFile::take(dir.path(), "x.pid", "tool").expect_err("held");
        assert!(
            e.contains(&format!("tool process {parent} is using")),
            "{e}"
        );

        std::fs::write(&path, "999999999\n").expect("write");
        let held = PidFile::take(dir.path(), "x.pid", "tool").expect("taken over");
        assert_eq!(
            std::fs::read_to_string(held.path()).expect("read").trim(),
            std::process::id().to_string()
        );
        drop(held);
        assert!(!path.exists());
    }
}
