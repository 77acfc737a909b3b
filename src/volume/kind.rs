//! The kinds of volume strata can make, by name.

/// The kinds of volume strata can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    Loop,
    Btrfs,
    Tmpfs,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Dir, Kind::Loop, Kind::Btrfs, Kind::Tmpfs];

    /// Every kind's name, for messages that say what is accepted.
    pub const CHOICES: &str = "dir, loop, btrfs or tmpfs";

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Loop => "loop",
            Kind::Btrfs => "btrfs",
            Kind::Tmpfs => "tmpfs",
        }
    }

    /// Whether volumes of this kind can be handed out as raw block devices.
    pub fn supports_block(self) -> bool {
        self == Kind::Loop
    }

    /// Whether volumes of this kind keep their data in an image file (and so may have a loop
    /// device attached to it).
    pub fn keeps_an_image(self) -> bool {
        self == Kind::Loop
    }

    /// Whether volumes of this kind carry a filesystem that strata makes (and so a fs type).
    pub fn formats(self) -> bool {
        self == Kind::Loop
    }
}
