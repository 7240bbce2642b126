//! "Did you mean …?" for names a user typed: a cloud in clouds.yaml, a
//! flavor, a network.

/// The known name closest to `name`, if close enough to be a typo: at most
/// one edit in three characters, and at least one allowed.
pub fn did_you_mean(name: &str, known: &[String]) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    let name = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&name, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// Edit distance counting a swap of neighbours as one edit (optimal string
/// alignment): `dve` for `dev` is the commonest typo and should be close.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between the first i chars of a and j chars of b.
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_needs_a_close_name() {
        let known = [
            "ingot-playground".to_string(),
            "ingot-playground-admin".to_string(),
        ];
        assert_eq!(
            did_you_mean("ingot-plaground", &known).as_deref(),
            Some("ingot-playground")
        );
        assert_eq!(
            did_you_mean("INGOT-PLAYGROUND", &known).as_deref(),
            Some("ingot-playground")
        );
        assert_eq!(did_you_mean("prod", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("dve", "dev"), 1);
    }
}
