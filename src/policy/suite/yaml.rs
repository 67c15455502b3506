//! Suite files are YAML with anchors, `<<` merge keys and JSON flow style; both runners read
//! them into JSON through here.

use serde_json::Value as Json;

/// Parses YAML (anchors and `<<` merge keys applied) into JSON.
pub fn yaml_to_json(text: &str) -> Result<Json, String> {
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    v.apply_merge().map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    apply_merge_keys(&mut json);
    Ok(json)
}

/// Resolves `<<` merge keys at every depth (explicit keys win over merged ones).
fn apply_merge_keys(v: &mut Json) {
    match v {
        Json::Object(o) => {
            if let Some(merged) = o.remove("<<") {
                let sources = match merged {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                for src in sources {
                    if let Json::Object(so) = src {
                        for (k, val) in so {
                            o.entry(k).or_insert(val);
                        }
                    }
                }
            }
            for val in o.values_mut() {
                apply_merge_keys(val);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(apply_merge_keys),
        _ => {}
    }
}
