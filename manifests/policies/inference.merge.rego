# Accepting a multi-model answer. Input: {"consensus_score" (0..1), "answered", "asked", …}.
package inference.merge

default allow := true

deny contains msg if {
	input.consensus_score < data.min_agreement
	msg := sprintf("consensus %v is below the required agreement of %v (inference.merge: data.min_agreement)", [input.consensus_score, data.min_agreement])
}
