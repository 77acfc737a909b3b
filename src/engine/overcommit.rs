//! Overcommit ratios per backend, as an operator types them (`--overcommit tmpfs=1.5`, the
//! settings file): parsed here, with the message the operator reads when one is wrong.

use crate::backend::Kind;
use std::collections::BTreeMap;

/// Overcommit ratios per backend, in thousandths (1000 = no overcommit, the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overcommit(BTreeMap<Kind, u32>);

impl Overcommit {
    /// The ratio of `kind` in thousandths.
    pub fn permille(&self, kind: Kind) -> u32 {
        self.0.get(&kind).copied().unwrap_or(1000)
    }

    /// Sets the ratio of `kind` (at least 1: promising less than the node has is pointless).
    pub fn set(&mut self, kind: Kind, ratio: f64) -> std::result::Result<(), String> {
        if !ratio.is_finite() || !(1.0..=1000.0).contains(&ratio) {
            return Err(format!("overcommit ratio {ratio} of {} is not between 1 and 1000", kind.as_str()));
        }
        // In range (1000 to 1,000,000 after scaling), so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "checked to be in 1..=1000 above")]
        let permille = (ratio * 1000.0).round() as u32;
        self.0.insert(kind, permille);
        Ok(())
    }

    /// Parses `<backend>=<ratio>` (`tmpfs=1.5`).
    pub fn parse_pair(text: &str) -> std::result::Result<(Kind, f64), String> {
        let (name, ratio) = text.split_once('=').ok_or_else(|| format!("{text:?} is not <backend>=<ratio>"))?;
        let kind = Kind::parse(name.trim()).ok_or_else(|| format!("unknown backend {name:?}"))?;
        let ratio = ratio.trim().parse::<f64>().map_err(|_| format!("{ratio:?} is not a number"))?;
        Overcommit::default().set(kind, ratio)?;
        Ok((kind, ratio))
    }

    /// The ratios from `<backend>=<ratio>` pairs, the last of a backend winning.
    pub fn from_pairs(pairs: &[(Kind, f64)]) -> std::result::Result<Overcommit, String> {
        let mut o = Overcommit::default();
        for (kind, ratio) in pairs {
            o.set(*kind, *ratio)?;
        }
        Ok(o)
    }

    pub(super) fn scale(&self, kind: Kind, bytes: u64) -> u64 {
        let scaled = u128::from(bytes) * u128::from(self.permille(kind)) / 1000;
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }
}
