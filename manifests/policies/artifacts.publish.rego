# Publishing artifacts. Input: the tools.call input plus `size_bytes`, the file's size.
package artifacts.publish

default allow := true

deny contains msg if {
	input.size_bytes > data.max_size_bytes
	msg := sprintf("the file is %v bytes, over the limit of %v (artifacts.publish: data.max_size_bytes)", [input.size_bytes, data.max_size_bytes])
}
