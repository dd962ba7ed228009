//! Dimension breakdowns: the results of an experiment split by the value one exposure
//! attribute had at a unit's first exposure (country, platform, app version …).
//!
//! The split is kept as the arm statistics are, incrementally: every kept per-unit row carries
//! its unit's *segment* (one slice per chosen dimension) and the aggregator moves per-slice sums
//! beside the per-arm ones. So that a dimension with a value per unit (a user id chosen by
//! mistake) cannot grow without bound, each (experiment, phase, dimension) keeps at most
//! [`MAX_KEPT_VALUES`] distinct values, first come first kept; later new values count in
//! [`Slice::Other`]. Results show the [`TOP_VALUES`] slices with the most units and fold the
//! rest into `Other`, so the top 20 are exact while a dimension has at most 100 values.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::sums::Sums;

/// Dimensions an experiment may be broken down by.
pub const MAX_DIMENSIONS: usize = 3;
/// Distinct values kept per (experiment, phase, dimension).
pub const MAX_KEPT_VALUES: usize = 100;
/// Slices shown by name in results; the rest are summed into [`Slice::Other`].
pub const TOP_VALUES: usize = 20;
/// Attribute values are compared on at most this many bytes (a longer one is cut at a char
/// boundary), as exposures keep attributes up to 128 bytes.
const MAX_VALUE_BYTES: usize = 128;

/// One slice of a dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slice {
    /// Units whose first exposure had this value.
    Value(String),
    /// Units whose first exposure lacked the attribute.
    Missing,
    /// Values past the kept ones, or past the top slices in results.
    Other,
}

impl Slice {
    /// How the slice is stored: a user value behind `=`, so no value can pass for a marker.
    pub fn stored(&self) -> String {
        match self {
            Slice::Value(value) => format!("={value}"),
            Slice::Missing => "$missing".to_owned(),
            Slice::Other => "$other".to_owned(),
        }
    }

    pub fn from_stored(stored: &str) -> Slice {
        match stored.strip_prefix('=') {
            Some(value) => Slice::Value(value.to_owned()),
            None if stored == "$missing" => Slice::Missing,
            None => Slice::Other,
        }
    }
}

/// A unit's slice in each chosen dimension: (dimension, stored slice), in the experiment's
/// order of dimensions.
pub type Segment = Vec<(String, String)>;

/// Assigns units of one experiment phase to slices, keeping the cap on distinct values.
#[derive(Debug, Default)]
pub struct Segmenter {
    /// Stored slices already kept, per dimension.
    kept: HashMap<String, HashSet<String>>,
}

impl Segmenter {
    /// Starts from the slices the phase already keeps: (dimension, stored slice).
    pub fn new(kept: impl IntoIterator<Item = (String, String)>) -> Segmenter {
        let mut segmenter = Segmenter::default();
        for (dimension, stored) in kept {
            segmenter.kept.entry(dimension).or_default().insert(stored);
        }
        segmenter
    }

    /// The segment of a unit whose first exposure had `attributes`.
    pub fn segment(&mut self, dimensions: &[String], attributes: &BTreeMap<String, String>) -> Segment {
        dimensions
            .iter()
            .map(|dimension| {
                let slice = match attributes.get(dimension) {
                    None => Slice::Missing,
                    Some(value) => Slice::Value(truncate(value).to_owned()),
                };
                (dimension.clone(), self.keep(dimension, slice).stored())
            })
            .collect()
    }

    fn keep(&mut self, dimension: &str, slice: Slice) -> Slice {
        let kept = self.kept.entry(dimension.to_owned()).or_default();
        let stored = slice.stored();
        if kept.contains(&stored) {
            return slice;
        }
        let values = kept.iter().filter(|s| s.starts_with('=')).count();
        if matches!(slice, Slice::Value(_)) && values >= MAX_KEPT_VALUES {
            return Slice::Other;
        }
        kept.insert(stored);
        slice
    }
}

fn truncate(value: &str) -> &str {
    if value.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// The kept sums of one slice: (metric, arm) → sums, with the `$units` rows among them.
pub type SliceSums = HashMap<(String, String), Sums>;

/// The slices results show: the [`TOP_VALUES`] with the most units (`units_row` rows, summed
/// over arms; ties by name), then [`Slice::Missing`] if any, then everything else summed as
/// [`Slice::Other`].
pub fn top_slices(mut slices: BTreeMap<Slice, SliceSums>, units_row: &str) -> Vec<(Slice, SliceSums)> {
    let units = |sums: &SliceSums| -> f64 {
        sums.iter()
            .filter(|((metric, _), _)| metric == units_row)
            .map(|(_, s)| s.n)
            .sum()
    };
    let mut values: Vec<(Slice, SliceSums)> = Vec::new();
    let mut other = slices.remove(&Slice::Other).unwrap_or_default();
    let missing = slices.remove(&Slice::Missing);
    let mut ranked: Vec<(Slice, SliceSums)> = slices.into_iter().collect();
    ranked.sort_by(|(a, x), (b, y)| units(y).total_cmp(&units(x)).then_with(|| a.cmp(b)));
    for (index, (slice, sums)) in ranked.into_iter().enumerate() {
        if index < TOP_VALUES {
            values.push((slice, sums));
            continue;
        }
        for (key, part) in sums {
            other.entry(key).or_default().add(&part);
        }
    }
    values.extend(missing.map(|sums| (Slice::Missing, sums)));
    if !other.is_empty() {
        values.push((Slice::Other, other));
    }
    values
}

/// Per (slice, arm) sums of one percentile-capped metric over its units' values
/// `(stored slice, arm, x, y)`: the cap is the value at rank ⌊p·(n−1)⌋ over *all* units, as
/// for the whole experiment, so a slice's figures are comparable with the total.
pub fn winsorized_slices(
    mut units: Vec<(String, String, f64, f64)>,
    percentile: f64,
    cap_y: bool,
) -> HashMap<(String, String), Sums> {
    let cap = |values: &mut Vec<f64>| -> f64 {
        values.sort_by(f64::total_cmp);
        let rank = (percentile * (values.len() - 1) as f64).floor() as usize;
        values[rank.min(values.len() - 1)]
    };
    let mut out: HashMap<(String, String), Sums> = HashMap::new();
    if units.is_empty() {
        return out;
    }
    let cap_x = cap(&mut units.iter().map(|u| u.2).collect());
    let cap_of_y = cap_y.then(|| cap(&mut units.iter().map(|u| u.3).collect()));
    for (slice, arm, x, y) in units.drain(..) {
        let x = x.min(cap_x);
        let y = cap_of_y.map_or(y, |c| y.min(c));
        let sums = out.entry((slice, arm)).or_default();
        sums.add(&Sums {
            n: 1.0,
            sum_x: x,
            sum_x2: x * x,
            sum_y: y,
            sum_y2: y * y,
            sum_xy: x * y,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn stored_slices_round_trip_and_a_value_never_passes_for_a_marker() {
        for slice in [
            Slice::Value("$other".into()),
            Slice::Value(String::new()),
            Slice::Missing,
            Slice::Other,
        ] {
            assert_eq!(Slice::from_stored(&slice.stored()), slice);
        }
    }

    #[test]
    fn values_past_the_cap_count_as_other_and_kept_ones_stay() {
        let dimensions = vec!["country".to_owned()];
        let mut segmenter = Segmenter::default();
        for i in 0..MAX_KEPT_VALUES {
            let segment = segmenter.segment(&dimensions, &attributes(&[("country", &format!("c{i}"))]));
            assert_eq!(segment[0].1, format!("=c{i}"));
        }
        let late = segmenter.segment(&dimensions, &attributes(&[("country", "late")]));
        assert_eq!(late[0].1, "$other");
        let early = segmenter.segment(&dimensions, &attributes(&[("country", "c3")]));
        assert_eq!(early[0].1, "=c3");
        let missing = segmenter.segment(&dimensions, &attributes(&[]));
        assert_eq!(missing[0].1, "$missing");
    }

    #[test]
    fn top_slices_keep_twenty_by_units_and_sum_the_rest() {
        let mut slices = BTreeMap::new();
        for i in 0..25 {
            let mut sums = SliceSums::new();
            sums.insert(
                ("$units".into(), "control".into()),
                Sums {
                    n: f64::from(i + 1),
                    ..Sums::default()
                },
            );
            slices.insert(Slice::Value(format!("v{i:02}")), sums);
        }
        let shown = top_slices(slices, "$units");
        assert_eq!(shown.len(), TOP_VALUES + 1);
        assert_eq!(shown[0].0, Slice::Value("v24".into()));
        let (last, other) = shown.last().expect("an Other slice");
        assert_eq!(*last, Slice::Other);
        // v00..v04 hold 1 + 2 + 3 + 4 + 5 units.
        assert_eq!(other[&("$units".to_owned(), "control".to_owned())].n, 15.0);
    }

    #[test]
    fn winsorized_slices_cap_with_the_cap_of_all_units() {
        let units = vec![
            ("=a".into(), "control".into(), 1.0, 0.0),
            ("=a".into(), "control".into(), 2.0, 0.0),
            ("=b".into(), "control".into(), 100.0, 0.0),
        ];
        let sums = winsorized_slices(units, 0.5, false);
        assert_eq!(sums[&("=b".to_owned(), "control".to_owned())].sum_x, 2.0);
        assert_eq!(sums[&("=a".to_owned(), "control".to_owned())].sum_x, 3.0);
    }
}
