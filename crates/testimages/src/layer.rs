//! A layer's file tree and its deterministic tar form.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// One entry of a tree. Paths are relative (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Arc<[u8]> },
    Symlink { target: String },
}

/// A file tree, kept sorted by path so its tar is the same bytes every time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl Tree {
    /// Adds the parent directories of `path` (mode 0755) that are not there yet.
    fn parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.nodes.entry(path[..end].to_string()).or_insert(Node::Dir { mode: 0o755 });
            end += 1;
        }
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        let path = clean(path);
        self.parents(&path);
        self.nodes.insert(path, Node::Dir { mode });
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: impl Into<Arc<[u8]>>) {
        let path = clean(path);
        self.parents(&path);
        self.nodes.insert(path, Node::File { mode, data: data.into() });
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        let path = clean(path);
        self.parents(&path);
        self.nodes.insert(path, Node::Symlink { target: target.to_string() });
    }

    #[cfg(test)]
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(&clean(path))
    }

    /// Writes the tree as a tar stream: sorted entries, mtime 0, owner 0:0, no user names.
    pub(crate) fn write_tar<W: Write>(&self, out: W) -> io::Result<W> {
        let mut builder = tar::Builder::new(out);
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match node {
                Node::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), io::empty())?;
                }
                Node::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, &data[..])?;
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        builder.into_inner()
    }
}

/// A layer ready to go into archives: its tar and the tar's sha256 (the diff_id).
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) tar: Arc<[u8]>,
    pub(crate) hex: String,
}

impl Layer {
    pub(crate) fn new(tree: &Tree) -> io::Result<Arc<Layer>> {
        let tar: Arc<[u8]> = tree.write_tar(Vec::new())?.into();
        let hex = sha256_hex(&tar);
        Ok(Arc::new(Layer { tar, hex }))
    }

    pub(crate) fn diff_id(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::default();
        t.file("/usr/bin/tool", 0o755, b"#!/bin/sh\n".to_vec());
        t.symlink("/bin/sh", "busybox");
        t.dir("/tmp", 0o1777);
        t.file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n".to_vec());
        t
    }

    #[test]
    fn tar_is_sorted_deterministic_and_owned_by_root() {
        let a = sample().write_tar(Vec::new()).unwrap();
        let b = sample().write_tar(Vec::new()).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(&a[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            seen.push((entry.path().unwrap().display().to_string(), h.entry_type(), h.mode().unwrap()));
        }
        let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["bin/", "bin/sh", "etc/", "etc/passwd", "tmp/", "usr/", "usr/bin/", "usr/bin/tool"]);
        assert_eq!(seen[4].2, 0o1777);
        assert_eq!(seen[1].1, tar::EntryType::Symlink);
        assert_eq!(seen[7], ("usr/bin/tool".to_string(), tar::EntryType::Regular, 0o755));
    }

    #[test]
    fn parents_are_added_and_kept() {
        let mut t = sample();
        t.dir("usr", 0o700);
        t.file("usr/lib/x", 0o644, b"x".to_vec());
        assert_eq!(t.get("usr"), Some(&Node::Dir { mode: 0o700 }));
        assert_eq!(t.get("/usr/lib/"), Some(&Node::Dir { mode: 0o755 }));
        assert_eq!(t.get("usr/lib/x"), Some(&Node::File { mode: 0o644, data: Arc::from(&b"x"[..]) }));
    }
}
