# Allocations: bounds every network agrees on, on top of what each provider offers.
# Input: the tools.call input; `args` are resources.allocate's arguments.
package resources.allocate

default allow := true

deny contains msg if {
	input.args.duration_seconds > data.max_duration_seconds
	msg := sprintf("duration_seconds %v is over the limit of %v (resources.allocate: data.max_duration_seconds)", [input.args.duration_seconds, data.max_duration_seconds])
}

deny contains msg if {
	input.args.requirements.memory_gb > data.max_memory_gb
	msg := sprintf("memory_gb %v is over the limit of %v (resources.allocate: data.max_memory_gb)", [input.args.requirements.memory_gb, data.max_memory_gb])
}
