//! The tool catalog `manifests/cloud/mcp_tools.json` (spec §11 notation) turned into standard
//! JSON Schema, and a validator for exactly the keywords the catalog uses. A keyword the
//! validator does not enforce is refused at load, so a schema never promises a check that
//! does not happen.
use serde_json::{json, Map, Value};

/// Keywords a schema in the catalog may use. `description`, `title` and `default` are notes.
const KEYWORDS: &[&str] = &[
    "type",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "maxItems",
    "pattern",
    "format",
    "description",
    "title",
    "default",
];

/// `format`s the validator checks.
const FORMATS: &[&str] = &["http-url", "date-time"];

/// One tool of the catalog, ready to serve.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub input_schema: Map<String, Value>,
    pub output_schema: Map<String, Value>,
}

/// Reads the catalog: resolves `$ref`s, converts `required: true` into `required` arrays and
/// checks every keyword.
pub fn load_catalog(text: &str) -> Result<Vec<ToolSpec>, String> {
    let file: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let empty = Map::new();
    let definitions = file.get("definitions").and_then(Value::as_object).unwrap_or(&empty);
    let tools = file.get("tools").and_then(Value::as_array).ok_or("no `tools` array")?;
    let mut specs = vec![];
    for (i, tool) in tools.iter().enumerate() {
        let name = tool["name"].as_str().ok_or(format!("tools[{i}] has no name"))?.to_string();
        let at = |what: &str| format!("{name}: {what}");
        let description = tool["description"].as_str().ok_or_else(|| at("no description"))?.to_string();
        let annotation = |key: &str| tool["annotations"][key].as_bool().unwrap_or(false);
        let fields = |key: &str| -> Result<Map<String, Value>, String> {
            let fields = tool.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
            let object = json!({ "type": "object", "properties": fields });
            let converted = convert(&object, definitions, &format!("{name}.{key}"))?;
            Ok(converted.as_object().cloned().unwrap_or_default())
        };
        let mut input_schema = fields("inputs")?;
        input_schema.insert("additionalProperties".into(), Value::Bool(false));
        if specs.iter().any(|s: &ToolSpec| s.name == name) {
            return Err(at("listed twice"));
        }
        specs.push(ToolSpec {
            title: tool["title"].as_str().map(String::from),
            description,
            read_only: annotation("read_only"),
            destructive: annotation("destructive"),
            idempotent: annotation("idempotent"),
            input_schema,
            output_schema: fields("outputs")?,
            name,
        });
    }
    Ok(specs)
}

/// §11 notation → JSON Schema: inlines `$ref`, lifts `required: true` into the parent's list.
fn convert(schema: &Value, definitions: &Map<String, Value>, at: &str) -> Result<Value, String> {
    let mut schema = schema.as_object().cloned().ok_or(format!("{at}: a schema must be an object"))?;
    if let Some(reference) = schema.remove("$ref") {
        let name = reference.as_str().ok_or(format!("{at}: $ref must be a string"))?;
        let target = definitions.get(name).ok_or(format!("{at}: $ref `{name}` is not in definitions"))?;
        let mut merged = target.as_object().cloned().ok_or(format!("{at}: definition `{name}` is not an object"))?;
        merged.extend(schema); // siblings of $ref (description, required) win
        schema = merged;
    }
    schema
        .remove("required")
        .filter(|r| !r.is_boolean())
        .map_or(Ok(()), |_| Err(format!("{at}: write `required: true` on the field, not a list on the object")))?;
    for key in schema.keys() {
        if !KEYWORDS.contains(&key.as_str()) {
            return Err(format!("{at}: keyword `{key}` is not supported by the validator"));
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        if !FORMATS.contains(&format) {
            return Err(format!("{at}: format `{format}` is not supported by the validator"));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        regex::Regex::new(pattern).map_err(|e| format!("{at}: bad pattern: {e}"))?;
    }
    if let Some(Value::Object(properties)) = schema.get("properties").cloned() {
        let mut converted = Map::new();
        let mut required = vec![];
        for (field, sub) in &properties {
            if sub.get("required") == Some(&Value::Bool(true)) {
                required.push(Value::String(field.clone()));
            }
            converted.insert(field.clone(), convert(sub, definitions, &format!("{at}.{field}"))?);
        }
        schema.insert("properties".into(), Value::Object(converted));
        if !required.is_empty() {
            schema.insert("required".into(), Value::Array(required));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub @ Value::Object(_)) = schema.get(key).cloned() {
            schema.insert(key.into(), convert(&sub, definitions, &format!("{at}.{key}"))?);
        }
    }
    Ok(Value::Object(schema))
}

/// Every way `value` breaks `schema`, each naming the field (`capabilities.network.region: …`).
pub fn validate(schema: &Map<String, Value>, value: &Value) -> Vec<String> {
    let mut errors = vec![];
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Map<String, Value>, value: &Value, at: &str, errors: &mut Vec<String>) {
    let field = if at.is_empty() { "arguments".to_string() } else { format!("`{at}`") };
    let mut fail = |why: String| errors.push(format!("{field}: {why}"));
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !allowed.iter().any(|t| has_type(value, t)) {
            fail(format!("expected {}, got {}", allowed.join(" or "), describe(value)));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(value) {
            let list = options.iter().map(Value::to_string).collect::<Vec<_>>().join(", ");
            fail(format!("must be one of {list}, got {value}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|min| n < *min) {
            fail(format!("must be at least {min}, got {value}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|max| n > *max) {
            fail(format!("must be at most {max}, got {value}"));
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count();
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|min| (chars as u64) < *min) {
            fail(format!("must be at least {min} characters, got {chars}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|max| (chars as u64) > *max) {
            fail(format!("must be at most {max} characters, got {chars}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(s)) {
                fail(format!("must match {pattern}, got {}", clip(s)));
            }
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("http-url") => {
                if let Err(e) = crate::config::parse_url("URL", s, &["http", "https"]) {
                    fail(e.to_string());
                }
            }
            Some("date-time") if s.parse::<holochain_types::prelude::Timestamp>().is_err() => {
                fail(format!("must be an RFC 3339 date-time, got {}", clip(s)));
            }
            _ => {}
        }
    }
    if let Some(object) = value.as_object() {
        let empty = Map::new();
        let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                errors.push(format!("`{}`: required", join(at, name)));
            }
        }
        for (name, sub) in object {
            let path = join(at, name);
            match (properties.get(name), schema.get("additionalProperties")) {
                (Some(Value::Object(sub_schema)), _) => check(sub_schema, sub, &path, errors),
                (None, Some(Value::Bool(false))) => {
                    let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    errors.push(format!("`{path}`: unknown field; known fields: {}", known.join(", ")));
                }
                (None, Some(Value::Object(extra))) => check(extra, sub, &path, errors),
                _ => {}
            }
        }
    }
    if let Some((items, max)) = value.as_array().zip(schema.get("maxItems").and_then(Value::as_u64)) {
        if items.len() as u64 > max {
            errors.push(format!("{field}: at most {max} items, got {}", items.len()));
        }
    }
    if let (Some(items), Some(Value::Object(item_schema))) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{at}[{i}]"), errors);
        }
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {}", clip(s)),
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        other => other.to_string(),
    }
}

/// A value quoted for an error message, cut short if long.
fn clip(s: &str) -> String {
    let short: String = s.chars().take(80).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.into()
    } else {
        format!("{at}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<ToolSpec> {
        load_catalog(super::super::CATALOG).expect("the catalog loads")
    }

    fn tool(name: &str) -> ToolSpec {
        catalog().into_iter().find(|t| t.name == name).expect("tool in catalog")
    }

    #[test]
    fn section_11_notation_becomes_standard_json_schema() {
        let join = tool("holochain.join_mesh");
        assert_eq!(join.input_schema["required"], json!(["network", "agent_name", "capabilities"]));
        assert_eq!(join.input_schema["additionalProperties"], json!(false));
        assert_eq!(join.input_schema["properties"]["network"]["enum"], json!(["mainnet", "testnet", "local"]));
        assert_eq!(join.input_schema["properties"]["capabilities"]["type"], json!("object"));
        assert!(join.output_schema["required"].as_array().unwrap().contains(&json!("mesh_status")));
        assert!(!serde_json::to_string(&join.input_schema).unwrap().contains("$ref"));
        assert!(join.input_schema["properties"]["bootstrap_override"].is_object(), "optional inputs are listed too");
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let join = tool("holochain.join_mesh");
        let errors = validate(
            &join.input_schema,
            &json!({
                "network": "moon",
                "agent_name": "has space",
                "capabilities": { "network": { "region": 7 }, "compute": { "cpu_cores": "nine", "cores": 9 } },
                "extra": 1
            }),
        );
        let text = errors.join("\n");
        assert!(text.contains("`network`: must be one of \"mainnet\", \"testnet\", \"local\", got \"moon\""), "{text}");
        assert!(text.contains("`agent_name`: must match"), "{text}");
        assert!(text.contains("`capabilities.network.region`: expected string, got 7"), "{text}");
        assert!(text.contains("`capabilities.compute.cpu_cores`: expected number, got the string \"nine\""), "{text}");
        assert!(
            text.contains("`capabilities.compute.cores`: unknown field; known fields: hardware_class, cpu_cores"),
            "{text}"
        );
        assert!(text.contains("`extra`: unknown field"), "{text}");
        assert_eq!(validate(&join.input_schema, &json!({}))[0], "`network`: required");
        assert_eq!(validate(&join.input_schema, &json!([1]))[0], "arguments: expected object, got an array");
    }

    #[test]
    fn numbers_strings_and_maps_are_bounded() {
        let peers = tool("holochain.query_peers");
        let errors =
            validate(&peers.input_schema, &json!({ "limit": 0, "min_vram_gb": 2.5, "model": "x".repeat(200) }));
        let text = errors.join("\n");
        assert!(text.contains("`limit`: must be at least 1"), "{text}");
        assert!(text.contains("`min_vram_gb`: expected integer, got 2.5"), "{text}");
        assert!(text.contains("`model`: must be at most 128 characters, got 200"), "{text}");
        let install = tool("holochain.install_dna");
        let errors =
            validate(&install.input_schema, &json!({ "path": "x.happ", "expected_dna_hashes": { "main": "nope" } }));
        assert!(errors[0].starts_with("`expected_dna_hashes.main`: must match"), "{errors:?}");
        let bad_url = validate(
            &tool("holochain.init_conductor").input_schema,
            &json!({ "bootstrap_override": "ftp://example.org" }),
        );
        assert!(bad_url[0].contains("`bootstrap_override`"), "{bad_url:?}");
        let publish = tool("artifacts.publish");
        let labels = |n: usize| json!({ "path": "f", "labels": vec!["l"; n] });
        assert_eq!(validate(&publish.input_schema, &labels(16)), Vec::<String>::new());
        assert_eq!(validate(&publish.input_schema, &labels(17)), ["`labels`: at most 16 items, got 17"]);
    }

    #[test]
    fn a_keyword_the_validator_does_not_enforce_is_refused_at_load() {
        let file = r#"{"tools":[{"name":"t","description":"d","inputs":{"x":{"type":"string","uniqueItems":true}}}]}"#;
        assert!(load_catalog(file).unwrap_err().contains("keyword `uniqueItems` is not supported"));
        let file = r#"{"tools":[{"name":"t","description":"d","inputs":{"x":{"$ref":"missing"}}}]}"#;
        assert!(load_catalog(file).unwrap_err().contains("$ref `missing` is not in definitions"));
    }
}
