# A request from another node's sidecar to this node (artifact bytes, inference, allocations), checked first for its
# signature, freshness and the caller's membership of the network. Allowed requests are not
# recorded (they are the data plane); a denial is a Decision like any other.
# Input: {"action": "peer.request", "via": "peer", "node" (this node), "network",
#         "caller" (the asking agent), "args": {"route", "resource"}}; routes: artifacts.content
#         (resource: the CID), inference.chat, inference.completions, inference.embeddings (the model),
#         resources.request (the resource type), resources.release (the allocation id).
package peer.request

default allow := true

deny contains msg if {
	some blocked in data.blocked_callers
	input.caller == blocked
	msg := sprintf("%s may not use this node's peer routes (peer.request: data.blocked_callers)", [input.caller])
}

deny contains msg if {
	some route in data.closed_routes
	input.args.route == route
	msg := sprintf("this node does not serve %s to peers (peer.request: data.closed_routes)", [route])
}
