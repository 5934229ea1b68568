//! `rkube-testimages`: the container images the node agent's tests run, built locally from
//! what the host already has, with no registry. [`build_all`] writes one docker-archive
//! tar per image (the format `docker save` writes and `ctr -n k8s.io images import FILE`
//! accepts) into a directory: `busybox` (Debian's static busybox with every applet),
//! `nginx` at four tags (Debian's nginx with its shared libraries, our own config),
//! `registry.k8s.io/pause:3.10` (a static C program compiled here) and `testserver`
//! (the `rkube-testserver` binary, an agnhost stand-in). Archives are deterministic
//! (sorted entries, mtime 0, owner 0:0), so the same inputs give the same image IDs;
//! an archive whose bytes would not change is not rewritten.
//!
//! Every image but pause has the busybox tree as its first layer (so `sh` exists for exec
//! probes), shared by digest across images; nginx and testserver add a layer of their own
//! and each nginx tag a last small layer with `/usr/share/nginx/html/version`, so every
//! tag is a distinct image.
//!
//! From an integration test (where `target/<profile>/rkube-testserver` is already built
//! under `cargo test --workspace`; otherwise [`find_testserver`] runs cargo once), build
//! into a directory that persists so unchanged archives are left alone, then import:
//!
//! ```no_run
//! // In an integration test: Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-images").
//! let dir = std::env::temp_dir().join("rkube-test-images");
//! for image in rkube_testimages::build_all(&dir)? {
//!     // ctr -n k8s.io images import <image.path>; the tags then appear under
//!     // rkube_testimages::normalize(tag), e.g. docker.io/library/busybox:1.28.
//!     println!("{} {}", image.image_id, image.path.display());
//! }
//! # Ok::<(), rkube_testimages::Error>(())
//! ```

mod archive;
mod layer;
mod sources;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive::ImageSpec;
use layer::{Layer, Tree};

pub use sources::find_testserver;

/// The busybox image's tags.
pub const BUSYBOX_TAGS: [&str; 3] = ["busybox:1.28", "busybox:latest", "k8s.gcr.io/busybox:latest"];
/// The nginx tags; each is an image of its own (distinct `/usr/share/nginx/html/version`).
pub const NGINX_TAGS: [&str; 4] = ["nginx:1.14.2", "nginx:1.16", "nginx:1.17", "nginx:latest"];
/// The pause (sandbox) image.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The testserver image's tags.
pub const TESTSERVER_TAGS: [&str; 2] = ["rkube.local/testserver:1.0", "testserver:latest"];

/// One archive [`build_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The first tag, as written in the archive (e.g. `busybox:1.28`).
    pub name: String,
    /// Every tag in the archive's `RepoTags`, unnormalized.
    pub tags: Vec<String>,
    /// The archive file.
    pub path: PathBuf,
    /// The config digest, `sha256:<hex>`: the image ID containerd reports.
    pub image_id: String,
}

/// What [`build_all_with`] may be told.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The `rkube-testserver` binary to put in the testserver image; when `None`,
    /// [`find_testserver`] looks for it.
    pub testserver: Option<PathBuf>,
}

/// Why building the images failed; every variant names the image and file involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {image}: reading {path}: {source}")]
    Read { image: String, path: PathBuf, source: io::Error },
    #[error("image {image}: writing {path}: {source}")]
    Write { image: String, path: PathBuf, source: io::Error },
    #[error("image {image}: running {command}: {source}")]
    Spawn { image: String, command: String, source: io::Error },
    #[error("image {image}: {command} failed ({status}): {output}")]
    Command { image: String, command: String, status: String, output: String },
    #[error("image {image}: {binary} needs {library}, which ldd cannot find")]
    MissingLibrary { image: String, binary: PathBuf, library: String },
    #[error("image {image}: {busybox} has no applet {applet}")]
    MissingApplet { image: String, busybox: PathBuf, applet: String },
    #[error("image {image}: building the tar of {what}: {source}")]
    Tar { image: String, what: String, source: io::Error },
    #[error("image testserver: no rkube-testserver binary: {0}")]
    TestserverNotFound(String),
}

/// The name containerd stores an image under: short names go to `docker.io/library/`,
/// `user/name` to `docker.io/`, names with a registry host stay as they are.
pub fn normalize(tag: &str) -> String {
    match tag.split_once('/') {
        None => format!("docker.io/library/{tag}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => tag.to_string(),
        Some(_) => format!("docker.io/{tag}"),
    }
}

/// Builds every test image into `out_dir` (created if missing), finding the testserver
/// binary with [`find_testserver`]. Returns the images in a fixed order: busybox, the
/// four nginx tags, pause, testserver.
pub fn build_all(out_dir: &Path) -> Result<Vec<BuiltImage>, Error> {
    build_all_with(out_dir, &Options::default())
}

/// [`build_all`] with options.
pub fn build_all_with(out_dir: &Path, options: &Options) -> Result<Vec<BuiltImage>, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Write {
        image: "all".into(),
        path: out_dir.to_path_buf(),
        source,
    })?;
    let testserver = match &options.testserver {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => return Err(Error::TestserverNotFound(format!("{} is not a file", path.display()))),
        None => find_testserver()?,
    };

    let mut built = Vec::new();
    let base_tree = sources::busybox_tree("busybox")?;
    let base = layer_of(&base_tree, "busybox", "the busybox layer")?;

    built.push(write_image(
        out_dir,
        "busybox",
        ImageSpec {
            tags: BUSYBOX_TAGS.iter().map(|t| t.to_string()).collect(),
            cmd: Some(vec!["sh".into()]),
            ..ImageSpec::default()
        },
        &[Arc::clone(&base)],
    )?);

    let nginx = layer_of(&sources::nginx_tree("nginx")?, "nginx", "the nginx layer")?;
    for tag in NGINX_TAGS {
        let mut version = Tree::default();
        version.file("usr/share/nginx/html/version", 0o644, format!("{tag}\n").into_bytes());
        let version = layer_of(&version, tag, "the version layer")?;
        let file = format!("nginx-{}", tag.rsplit(':').next().unwrap_or("latest"));
        built.push(write_image(
            out_dir,
            &file,
            ImageSpec {
                tags: vec![tag.to_string()],
                entrypoint: Some(vec!["/usr/sbin/nginx".into()]),
                cmd: Some(vec!["-c".into(), "/etc/nginx/nginx.conf".into()]),
                exposed_ports: vec!["80/tcp".into()],
            },
            &[Arc::clone(&base), Arc::clone(&nginx), version],
        )?);
    }

    let pause = layer_of(&sources::pause_tree(PAUSE_IMAGE)?, PAUSE_IMAGE, "the pause layer")?;
    built.push(write_image(
        out_dir,
        "pause",
        ImageSpec {
            tags: vec![PAUSE_IMAGE.to_string()],
            entrypoint: Some(vec!["/pause".into()]),
            ..ImageSpec::default()
        },
        &[pause],
    )?);

    let server = layer_of(&sources::testserver_tree("testserver", &testserver)?, "testserver", "the testserver layer")?;
    built.push(write_image(
        out_dir,
        "testserver",
        ImageSpec {
            tags: TESTSERVER_TAGS.iter().map(|t| t.to_string()).collect(),
            entrypoint: Some(vec!["/testserver".into()]),
            exposed_ports: vec!["8080/tcp".into()],
            ..ImageSpec::default()
        },
        &[base, server],
    )?);
    Ok(built)
}

fn layer_of(tree: &Tree, image: &str, what: &str) -> Result<Arc<Layer>, Error> {
    Layer::new(tree).map_err(|source| Error::Tar { image: image.into(), what: what.into(), source })
}

/// Writes `<out_dir>/<file>.tar` unless it already holds exactly these bytes.
fn write_image(out_dir: &Path, file: &str, spec: ImageSpec, layers: &[Arc<Layer>]) -> Result<BuiltImage, Error> {
    let name = spec.tags.first().cloned().unwrap_or_else(|| file.to_string());
    let (bytes, image_id) = archive::archive_bytes(&spec, layers).map_err(|source| Error::Tar {
        image: name.clone(),
        what: "the archive".into(),
        source,
    })?;
    let path = out_dir.join(format!("{file}.tar"));
    let unchanged = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64)
        && std::fs::read(&path).is_ok_and(|old| old == bytes);
    if !unchanged {
        let tmp = out_dir.join(format!(".{file}.tar.tmp"));
        std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path)).map_err(|source| Error::Write {
            image: name.clone(),
            path: path.clone(),
            source,
        })?;
    }
    Ok(BuiltImage { name, tags: spec.tags, path, image_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_testserver_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("rkube-testimages-unit-{}", std::process::id()));
        let options = Options { testserver: Some(PathBuf::from("/nonexistent/rkube-testserver")) };
        let err = build_all_with(&dir, &options).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            err.to_string(),
            "image testserver: no rkube-testserver binary: /nonexistent/rkube-testserver is not a file"
        );
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(normalize("busybox:1.28"), "docker.io/library/busybox:1.28");
        assert_eq!(normalize("library/nginx:1.16"), "docker.io/library/nginx:1.16");
        assert_eq!(normalize("k8s.gcr.io/busybox:latest"), "k8s.gcr.io/busybox:latest");
        assert_eq!(normalize("rkube.local/testserver:1.0"), "rkube.local/testserver:1.0");
        assert_eq!(normalize("localhost/x:1"), "localhost/x:1");
        assert_eq!(normalize("localhost:5000/x:1"), "localhost:5000/x:1");
    }
}
