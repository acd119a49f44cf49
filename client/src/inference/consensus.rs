//! The reducer `weighted_consensus` (spec §10.4): equivalent answers form a group, the group with
//! the most weight wins, and the consensus score is its weight over the weight of every answer.
//! Pure and order-independent: the same answers give the same merge on every node.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One model's (or provider's) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub source: String,
    pub weight: f64,
    pub text: String,
    /// The answer's embedding, when the policy names an embeddings model that answered.
    pub embedding: Option<Vec<f32>>,
}

/// Answers judged equivalent, heaviest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Indexes into the answers given to `weighted_consensus`.
    pub members: Vec<usize>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    /// The winning group's heaviest answer, as that model wrote it.
    pub response: String,
    /// Index of the answer `response` is.
    pub representative: usize,
    /// Winning weight over the weight of all answers (0-1).
    pub consensus_score: f64,
    /// `consensus_score` reached `min_agreement`.
    pub agreed: bool,
    /// Every group; the winner is the first.
    pub groups: Vec<Group>,
}

/// The text two answers are compared by: lower case, letters and digits only, single spaces.
pub fn normalise(text: &str) -> String {
    let mapped: String = text.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    mapped.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// sha256 of the answer as written, in hex: the `response_hash` of a vote.
pub fn response_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    (na > 0.0 && nb > 0.0).then(|| dot / (na.sqrt() * nb.sqrt()))
}

/// Merges `answers` (none: `None`). Answers are taken heaviest first (ties by source name); each
/// joins the first group whose heaviest answer it is equivalent to (same normalised text, or
/// embeddings at least `similarity` alike), else starts a group. The heaviest group wins; between
/// groups of equal weight the one holding the heavier answer wins (`highest_weight_wins`).
pub fn weighted_consensus(answers: &[Answer], min_agreement: f64, similarity: f64) -> Option<Merge> {
    let mut order: Vec<usize> = (0..answers.len()).collect();
    order.sort_by(|&a, &b| {
        answers[b].weight.total_cmp(&answers[a].weight).then_with(|| answers[a].source.cmp(&answers[b].source))
    });
    let normalised: Vec<String> = answers.iter().map(|a| normalise(&a.text)).collect();
    let equivalent = |a: usize, b: usize| {
        normalised[a] == normalised[b]
            || matches!(
                (&answers[a].embedding, &answers[b].embedding),
                (Some(x), Some(y)) if cosine(x, y).is_some_and(|c| c >= similarity)
            )
    };
    let mut groups: Vec<Group> = Vec::new();
    for i in order {
        match groups.iter_mut().find(|g| equivalent(g.members[0], i)) {
            Some(group) => {
                group.members.push(i);
                group.weight += answers[i].weight;
            }
            None => groups.push(Group { members: vec![i], weight: answers[i].weight }),
        }
    }
    // Groups were started heaviest answer first, so a stable sort by weight keeps that order
    // between equal weights.
    groups.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    let winner = groups.first()?;
    let total: f64 = answers.iter().map(|a| a.weight).sum();
    let consensus_score = if total > 0.0 { round4(winner.weight / total) } else { 0.0 };
    let representative = winner.members[0];
    Some(Merge {
        response: answers[representative].text.clone(),
        representative,
        consensus_score,
        agreed: consensus_score + 1e-9 >= min_agreement,
        groups,
    })
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(source: &str, weight: f64, text: &str) -> Answer {
        Answer { source: source.into(), weight, text: text.into(), embedding: None }
    }

    #[test]
    fn equivalent_texts_group_and_the_heaviest_group_wins() {
        let answers = [
            answer("gemma", 1.0, "The capital of France is Paris."),
            answer("phi", 1.2, "the capital of france is PARIS"),
            answer("qwen", 1.0, "Lyon."),
            answer("deepseek", 1.1, "  The capital of France is  Paris!"),
        ];
        let merge = weighted_consensus(&answers, 0.6, 0.9).unwrap();
        assert_eq!(merge.groups.len(), 2);
        assert_eq!(merge.groups[0].members, vec![1, 3, 0], "heaviest first");
        assert_eq!(merge.response, "the capital of france is PARIS", "the heaviest member's own words");
        assert_eq!(merge.consensus_score, round4(3.3 / 4.3));
        assert!(merge.agreed);
    }

    #[test]
    fn below_min_agreement_the_heaviest_group_still_wins_but_is_not_agreed() {
        let answers = [answer("a", 1.0, "yes"), answer("b", 1.5, "no"), answer("c", 1.0, "maybe")];
        let merge = weighted_consensus(&answers, 0.6, 0.9).unwrap();
        assert_eq!(merge.response, "no");
        assert_eq!(merge.consensus_score, round4(1.5 / 3.5));
        assert!(!merge.agreed);
    }

    #[test]
    fn equal_weights_go_to_the_group_holding_the_heaviest_answer() {
        // {a 1.0, b 1.0} vs {c 2.0}: both weigh 2.0; c is the heaviest single answer.
        let answers = [answer("a", 1.0, "x"), answer("b", 1.0, "x"), answer("c", 2.0, "y")];
        let merge = weighted_consensus(&answers, 0.5, 0.9).unwrap();
        assert_eq!(merge.response, "y");
        assert_eq!(merge.consensus_score, 0.5);
        assert!(merge.agreed, "exactly min_agreement agrees");
    }

    #[test]
    fn the_merge_does_not_depend_on_the_order_answers_arrived_in() {
        let answers = vec![
            answer("m1", 1.0, "alpha"),
            answer("m2", 1.0, "beta"),
            answer("m3", 1.0, "Alpha."),
            answer("m4", 0.5, "beta"),
        ];
        let first = weighted_consensus(&answers, 0.5, 0.9).unwrap();
        let mut reversed = answers.clone();
        reversed.reverse();
        let second = weighted_consensus(&reversed, 0.5, 0.9).unwrap();
        assert_eq!(first.response, "alpha");
        assert_eq!(second.response, first.response);
        assert_eq!(second.consensus_score, first.consensus_score);
    }

    #[test]
    fn embeddings_join_answers_that_say_the_same_in_other_words() {
        let mut a = answer("a", 1.0, "Paris");
        let mut b = answer("b", 1.0, "It is Paris, the capital.");
        let mut c = answer("c", 1.0, "Berlin");
        a.embedding = Some(vec![1.0, 0.1, 0.0]);
        b.embedding = Some(vec![0.95, 0.12, 0.01]);
        c.embedding = Some(vec![0.0, 0.2, 1.0]);
        let merge = weighted_consensus(&[a.clone(), b.clone(), c.clone()], 0.6, 0.95).unwrap();
        assert_eq!(merge.groups.len(), 2);
        assert_eq!(merge.consensus_score, round4(2.0 / 3.0));
        // Without embeddings the three differ.
        for x in [&mut a, &mut b, &mut c] {
            x.embedding = None;
        }
        assert_eq!(weighted_consensus(&[a, b, c], 0.6, 0.95).unwrap().groups.len(), 3);
    }

    #[test]
    fn nothing_to_merge_is_none_and_hashes_are_of_the_written_text() {
        assert!(weighted_consensus(&[], 0.6, 0.9).is_none());
        assert_eq!(response_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(normalise("Hello,  World!\n"), "hello world");
    }
}
