//! What a tree uses: allocated bytes and inodes, a file with several links counted once, what is
//! mounted inside the tree not counted.

use super::error::{Fail, Result};
use super::meta::{Meta, Type};
use super::walk::{At, Step, Visitor};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Allocated bytes and inodes of a tree, its top directory included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    pub bytes: u64,
    pub inodes: u64,
}

pub(super) fn measure(root: OwnedFd, shown: &Path) -> Result<TreeUsage> {
    let top = Meta::of_fd(&root).map_err(|f| super::walk::named(f, shown.to_owned()))?;
    let mut m = Measure { usage: TreeUsage { bytes: top.blocks * 512, inodes: 1 }, links: HashMap::new() };
    super::walk::walk(root, shown, &mut m)?;
    Ok(m.usage)
}

struct Measure {
    usage: TreeUsage,
    /// Files with several links seen, and how many of their links are still to come.
    links: HashMap<(u64, u64), u32>,
}

impl Visitor for Measure {
    fn entry(&mut self, at: &At<'_>, root_dev: u64) -> std::result::Result<Step, Fail> {
        let meta = at.meta;
        if meta.is_mount(root_dev) {
            return Ok(Step::Next);
        }
        if meta.kind() != Type::Dir && meta.nlink > 1 && self.seen(meta) {
            return Ok(Step::Next);
        }
        self.usage.bytes += meta.blocks * 512;
        self.usage.inodes += 1;
        Ok(if meta.kind() == Type::Dir { Step::Descend } else { Step::Next })
    }

    fn mount(&mut self, _at: &At<'_>) -> std::result::Result<(), Fail> {
        Ok(())
    }
}

impl Measure {
    /// Whether another link of `meta` was counted already; forgets the file after its last link.
    fn seen(&mut self, meta: &Meta) -> bool {
        match self.links.get_mut(&meta.id()) {
            Some(left) => {
                *left -= 1;
                if *left == 0 {
                    self.links.remove(&meta.id());
                }
                true
            }
            None => {
                self.links.insert(meta.id(), meta.nlink - 1);
                false
            }
        }
    }
}
