//! Where each image's files come from: the host's busybox and nginx, a pause program
//! compiled here, the testserver binary; dynamic binaries bring the libraries `ldd` lists.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::layer::Tree;

/// Debian's `busybox-static`.
const BUSYBOX: &str = "/bin/busybox";
/// Debian's nginx (`nginx-light`).
const NGINX: &str = "/usr/sbin/nginx";
/// The applets the node agent's tests rely on.
const NEEDED_APPLETS: [&str; 7] = ["nslookup", "wget", "sleep", "sh", "env", "cat", "nc"];

fn read(image: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read { image: image.into(), path: path.to_path_buf(), source })
}

/// Runs a command and returns its stdout; a non-zero exit is an error carrying stderr.
fn run(image: &str, command: &mut Command) -> Result<String, Error> {
    let shown = format!("{command:?}");
    let output =
        command.output().map_err(|source| Error::Spawn { image: image.into(), command: shown.clone(), source })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let tail: String = text.trim().chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::Command {
            image: image.into(),
            command: shown,
            status: output.status.to_string(),
            output: tail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The busybox tree: the binary, a symlink per applet in /bin, minimal /etc, /tmp, /root.
pub(crate) fn busybox_tree(image: &str) -> Result<Tree, Error> {
    let busybox = Path::new(BUSYBOX);
    let list = run(image, Command::new(busybox).arg("--list"))?;
    let applets: Vec<&str> = list.lines().map(str::trim).filter(|a| !a.is_empty() && !a.contains('/')).collect();
    for needed in NEEDED_APPLETS {
        if !applets.contains(&needed) {
            return Err(Error::MissingApplet { image: image.into(), busybox: busybox.into(), applet: needed.into() });
        }
    }
    let mut tree = Tree::default();
    tree.file("bin/busybox", 0o755, read(image, busybox)?);
    for applet in applets {
        if applet != "busybox" {
            tree.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    tree.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".to_vec(),
    );
    tree.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n".to_vec());
    tree.file("etc/hosts", 0o644, b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_vec());
    // glibc programs (nginx, testserver) look users up through NSS; files only.
    tree.file(
        "etc/nsswitch.conf",
        0o644,
        b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
            .to_vec(),
    );
    tree.dir("tmp", 0o1777);
    tree.dir("root", 0o700);
    for dir in ["dev", "proc", "sys", "etc", "var", "run", "usr/bin", "usr/sbin"] {
        tree.dir(dir, 0o755);
    }
    Ok(tree)
}

/// The shared libraries (and the dynamic loader) `ldd` says `binary` loads, at the paths
/// it prints. A static binary has none.
pub(crate) fn ldd(image: &str, binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let shown = format!("ldd {}", binary.display());
    let output = Command::new("ldd").arg(binary).output().map_err(|source| Error::Spawn {
        image: image.into(),
        command: shown.clone(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stdout.contains("not a dynamic executable") || stderr.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        return Err(Error::Command {
            image: image.into(),
            command: shown,
            status: output.status.to_string(),
            output: stderr.trim().to_string(),
        });
    }
    parse_ldd(&stdout).map_err(|library| Error::MissingLibrary { image: image.into(), binary: binary.into(), library })
}

/// Parses `ldd` output; `Err(name)` for a library ldd did not find.
pub(crate) fn parse_ldd(out: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in out.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(name.trim().to_string());
                }
                rest
            }
            None => line,
        };
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// Adds `binary` at `dest` plus every library it loads (copied, symlinks resolved).
fn add_dynamic(tree: &mut Tree, image: &str, binary: &Path, dest: &str) -> Result<(), Error> {
    tree.file(dest, 0o755, read(image, binary)?);
    for lib in ldd(image, binary)? {
        tree.file(&lib.to_string_lossy(), 0o755, read(image, &lib)?);
    }
    Ok(())
}

const NGINX_CONF: &str = "daemon off;
user root;
worker_processes 1;
error_log /dev/stderr;
pid /run/nginx.pid;

events {
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    server {
        listen 80;
        root /usr/share/nginx/html;
    }
}
";

const MIME_TYPES: &str = "types {
    text/html html htm;
    text/plain txt;
    text/css css;
    application/javascript js;
    application/json json;
    image/png png;
}
";

const INDEX_HTML: &str = "<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>rkube test image.</p>
</body>
</html>
";

/// The nginx layer: the binary and its libraries, our config, the page, the directories
/// nginx's compiled-in paths need (`nginx -V`: temp paths under /var/lib/nginx, logs
/// under /var/log/nginx, the lock under /var/lock, the pid under /run).
pub(crate) fn nginx_tree(image: &str) -> Result<Tree, Error> {
    let mut tree = Tree::default();
    add_dynamic(&mut tree, image, Path::new(NGINX), "usr/sbin/nginx")?;
    tree.file("etc/nginx/nginx.conf", 0o644, NGINX_CONF.as_bytes().to_vec());
    tree.file("etc/nginx/mime.types", 0o644, MIME_TYPES.as_bytes().to_vec());
    tree.file("usr/share/nginx/html/index.html", 0o644, INDEX_HTML.as_bytes().to_vec());
    for dir in [
        "var/lib/nginx/body",
        "var/lib/nginx/fastcgi",
        "var/lib/nginx/proxy",
        "var/lib/nginx/scgi",
        "var/lib/nginx/uwsgi",
        "var/log/nginx",
        "var/lock",
        "run",
        "usr/lib/nginx/modules",
    ] {
        tree.dir(dir, 0o755);
    }
    Ok(tree)
}

const PAUSE_C: &str = r#"/* rkube's pause: holds a pod's namespaces, reaps orphans, exits 0 on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int signo) {
    (void)signo;
    _exit(0);
}

static void sigreap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("rkube pause 3.10");
        return 0;
    }
    if (getpid() != 1) {
        fputs("pause: warning: not running as pid 1\n", stderr);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = sigdown;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        return 1;
    }
    sa.sa_handler = sigreap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        return 2;
    }
    for (;;) {
        pause();
    }
    return 42;
}
"#;

/// Removes a directory tree when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pause layer: `/pause`, compiled from [`PAUSE_C`] with `gcc -static -O2 -s`
/// (`$CC` overrides the compiler).
pub(crate) fn pause_tree(image: &str) -> Result<Tree, Error> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = TempDir(std::env::temp_dir().join(format!("rkube-testimages-pause-{}-{nanos}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|source| Error::Write {
        image: image.into(),
        path: dir.0.clone(),
        source,
    })?;
    let source = dir.0.join("pause.c");
    let binary = dir.0.join("pause");
    std::fs::write(&source, PAUSE_C).map_err(|err| Error::Write {
        image: image.into(),
        path: source.clone(),
        source: err,
    })?;
    let cc = std::env::var("CC").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "gcc".into());
    run(
        image,
        Command::new(cc).args(["-static", "-O2", "-s", "-Wall", "-o"]).arg(&binary).arg(&source).current_dir(&dir.0),
    )?;
    let mut tree = Tree::default();
    tree.file("pause", 0o755, read(image, &binary)?);
    Ok(tree)
}

/// The testserver layer: `/testserver` and its libraries.
pub(crate) fn testserver_tree(image: &str, binary: &Path) -> Result<Tree, Error> {
    let mut tree = Tree::default();
    add_dynamic(&mut tree, image, binary, "testserver")?;
    Ok(tree)
}

const TESTSERVER_BIN: &str = "rkube-testserver";

/// Finds the `rkube-testserver` binary: next to the running executable (a test binary in
/// `target/<profile>/deps/` or a tool in `target/<profile>/` finds
/// `target/<profile>/rkube-testserver`), else builds it with `$CARGO build -p
/// rkube-testserver` (`$CARGO` defaults to `cargo`) in this workspace and takes the path
/// cargo reports.
pub fn find_testserver() -> Result<PathBuf, Error> {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(TESTSERVER_BIN);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    build_testserver()
}

fn build_testserver() -> Result<PathBuf, Error> {
    let cargo = std::env::var("CARGO").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stdout = run(
        "testserver",
        Command::new(cargo)
            .args([
                "build",
                "-p",
                "rkube-testserver",
                "--bin",
                TESTSERVER_BIN,
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(&workspace),
    )?;
    executable_from_cargo(&stdout).ok_or_else(|| {
        Error::TestserverNotFound(format!(
            "cargo build in {} reported no {TESTSERVER_BIN} executable",
            workspace.display()
        ))
    })
}

/// The `executable` of the `rkube-testserver` artifact in cargo's JSON messages.
fn executable_from_cargo(messages: &str) -> Option<PathBuf> {
    messages.lines().filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()).find_map(|msg| {
        let artifact = msg["reason"] == "compiler-artifact" && msg["target"]["name"] == TESTSERVER_BIN;
        msg["executable"].as_str().filter(|_| artifact).map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libz.so.1", "/lib64/ld-linux-x86-64.so.2"]
                .map(PathBuf::from)
        );
        assert_eq!(parse_ldd("\tlibfoo.so.1 => not found\n"), Err("libfoo.so.1".to_string()));
        assert_eq!(parse_ldd("\tstatically linked\n"), Ok(vec![]));
    }

    #[test]
    fn finds_the_executable_in_cargo_messages() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"name":"rkube_testserver"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"rkube-testserver"},"executable":"/t/debug/rkube-testserver"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(executable_from_cargo(msgs), Some(PathBuf::from("/t/debug/rkube-testserver")));
        assert_eq!(executable_from_cargo("garbage"), None);
    }

    #[test]
    fn busybox_tree_has_applets_and_etc() {
        if !Path::new(BUSYBOX).exists() {
            eprintln!("skipping: {BUSYBOX} is missing (install busybox-static)");
            return;
        }
        let tree = busybox_tree("busybox").unwrap();
        assert!(matches!(tree.get("bin/busybox"), Some(crate::layer::Node::File { mode: 0o755, .. })));
        for applet in NEEDED_APPLETS {
            assert_eq!(
                tree.get(&format!("bin/{applet}")),
                Some(&crate::layer::Node::Symlink { target: "busybox".into() }),
                "{applet}"
            );
        }
        assert_eq!(tree.get("tmp"), Some(&crate::layer::Node::Dir { mode: 0o1777 }));
        assert!(tree.get("etc/passwd").is_some() && tree.get("etc/group").is_some());
    }
}
