# Every gated action passes this package first; `input.action` names it (e.g. `artifacts.publish`).
# Input: {"action", "via" (mcp | cli | api), "node" (agent key), "network", "args" (the tool's arguments)}.
package tools.call

default allow := true

deny contains msg if {
	some disabled in data.disabled_actions
	input.action == disabled
	msg := sprintf("%s is disabled on this network (tools.call: data.disabled_actions)", [input.action])
}
