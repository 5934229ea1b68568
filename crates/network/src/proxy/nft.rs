//! The thin executor: hands scripts to the `nft` binary. Everything it does is behind
//! [`Nft`] so the run loop can be tested with a fake.

use std::future::Future;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::Error;

/// Applies nft scripts (each one atomic transaction) and reads tables back.
pub trait Nft: Send + Sync {
    fn apply(&self, script: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// `nft -j list table ip <table>`; `None` when the table does not exist.
    fn list_json(&self, table: &str) -> impl Future<Output = Result<Option<String>, Error>> + Send;
}

impl<T: Nft> Nft for std::sync::Arc<T> {
    fn apply(&self, script: &str) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).apply(script)
    }
    fn list_json(&self, table: &str) -> impl Future<Output = Result<Option<String>, Error>> + Send {
        (**self).list_json(table)
    }
}

/// The real `nft`, run through a command prefix (`["nft"]`, or
/// `["ip", "netns", "exec", ns, "nft"]` in tests).
#[derive(Debug, Clone)]
pub struct CommandNft {
    prefix: Vec<String>,
}

impl CommandNft {
    pub fn new(prefix: &[String]) -> Result<CommandNft, Error> {
        if prefix.is_empty() {
            return Err(Error::EmptyCommand);
        }
        Ok(CommandNft { prefix: prefix.to_vec() })
    }

    /// Runs the prefix with `args`, feeding `stdin`; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<(bool, String, String), Error> {
        let mut cmd = Command::new(&self.prefix[0]);
        cmd.args(&self.prefix[1..])
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_err = |source| Error::Spawn { command: self.prefix.join(" "), source };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let pipe = child.stdin.take();
        // Feed stdin while collecting the output: a script that makes nft print a lot
        // could otherwise fill the stderr pipe while we still write.
        let feed = async move {
            if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
                // A write error means nft exited early; its stderr says why.
                let _ = pipe.write_all(text.as_bytes()).await;
            }
        };
        let ((), out) = tokio::join!(feed, child.wait_with_output());
        let out = out.map_err(spawn_err)?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Nft for CommandNft {
    async fn apply(&self, script: &str) -> Result<(), Error> {
        let (ok, _, stderr) = self.run(&["-f", "-"], Some(script)).await?;
        if ok {
            return Ok(());
        }
        Err(Error::Apply { stderr: truncate(stderr.trim()), line: failing_line(&stderr, script) })
    }

    async fn list_json(&self, table: &str) -> Result<Option<String>, Error> {
        let (ok, stdout, stderr) = self.run(&["-j", "list", "table", "ip", table], None).await?;
        if ok {
            Ok(Some(stdout))
        } else if stderr.contains("No such file or directory") {
            Ok(None)
        } else {
            Err(Error::List { table: table.into(), stderr: truncate(stderr.trim()) })
        }
    }
}

/// Deletes the table; `Ok(false)` when it did not exist.
pub async fn delete_table(nft: &CommandNft, table: &str) -> Result<bool, Error> {
    let script = format!("delete table ip {table}\n");
    let (ok, _, stderr) = nft.run(&["-f", "-"], Some(&script)).await?;
    if ok {
        Ok(true)
    } else if stderr.contains("No such file or directory") {
        Ok(false)
    } else {
        Err(Error::Apply { stderr: truncate(stderr.trim()), line: String::new() })
    }
}

/// The script line nft complained about first (`/dev/stdin:LINE:COL: Error: …`), so a
/// failure in a 100,000-line script can be read without the script.
fn failing_line(stderr: &str, script: &str) -> String {
    let number = stderr.lines().find_map(|l| {
        let rest = l.split_once("stdin:")?.1;
        rest.split(':').next()?.parse::<usize>().ok()
    });
    match number.and_then(|n| Some((n, script.lines().nth(n.checked_sub(1)?)?))) {
        Some((n, line)) => format!("line {n}: {line}"),
        None => String::new(),
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 2000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_line_is_quoted_from_the_script() {
        let stderr = "/dev/stdin:2:17-21: Error: No symbol type information\nadd rule ip t x bogus stuff\n";
        let script = "add chain ip t x\nadd rule ip t x bogus stuff\n";
        assert_eq!(failing_line(stderr, script), "line 2: add rule ip t x bogus stuff");
        assert_eq!(failing_line("Error: whatever", script), "");
        assert_eq!(failing_line("/dev/stdin:99:1: Error", script), "");
    }
}
