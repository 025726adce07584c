//! The size of a document before the engine walks it: the nesting of its
//! text and variables, and its fields after fragment expansion.

use super::*;

pub(super) fn too_nested(what: &str) -> ServerError {
    refusal(
        codes::INVALID_INPUT,
        format!("the {what} is nested more than {MAX_NESTING} levels deep"),
    )
}

/// Refuses a document whose brackets (`{`, `[`, `(`) nest deeper than
/// [`MAX_NESTING`], outside strings and comments. Reads the text once,
/// without recursion.
///
/// # Errors
/// INVALID_INPUT past the bound.
pub fn check_text_nesting(query: &str) -> ServerResult<()> {
    let bytes = query.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_nested("query"));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses variables whose lists and objects nest deeper than
/// [`MAX_NESTING`]. Walks them without recursion.
///
/// # Errors
/// INVALID_INPUT past the bound.
pub fn check_variables_nesting(variables: &Variables) -> ServerResult<()> {
    let mut stack: Vec<(&Value, usize)> = variables.values().map(|value| (value, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth >= MAX_NESTING {
            return Err(too_nested("variables value"));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// What one selection set holds, fragments not yet expanded.
#[derive(Default)]
pub(super) struct Shape<'a> {
    /// Fields selected directly (in nested sets and inline fragments too).
    fields: usize,
    /// The deepest nesting of sets and inline fragments, fragments aside.
    depth: usize,
    /// Fragments spread, each with the nesting at which it is spread.
    spreads: Vec<(&'a Name, usize)>,
}

/// Walks `set` without recursion.
pub(super) fn shape(set: &SelectionSet) -> Shape<'_> {
    let mut shape = Shape::default();
    let mut stack = vec![(set, 1usize)];
    while let Some((set, depth)) = stack.pop() {
        shape.depth = shape.depth.max(depth);
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    shape.fields += 1;
                    if !field.node.selection_set.node.items.is_empty() {
                        stack.push((&field.node.selection_set.node, depth + 1));
                    }
                }
                Selection::InlineFragment(inline) => {
                    stack.push((&inline.node.selection_set.node, depth + 1));
                }
                Selection::FragmentSpread(spread) => {
                    shape.spreads.push((&spread.node.fragment_name.node, depth));
                }
            }
        }
    }
    shape
}

/// The size of a fragment or operation with its fragments expanded.
#[derive(Clone, Copy, Default)]
pub(super) struct Expanded {
    fields: usize,
    depth: usize,
}

/// Refuses a document whose operations select more than `max_fields`
/// fields in all once their fragments are expanded, that nests selection
/// sets and fragment spreads deeper than [`MAX_NESTING`], or that defines a
/// fragment no operation uses (the engine's validation walks every
/// fragment definition, used or not, following its spreads by recursion:
/// five thousand unused fragments in a chain overflow its stack). Each
/// fragment is sized once (spreads of the same fragment reuse its size),
/// without recursion; a spread of an unknown fragment, or a cycle, counts
/// as nothing here (the engine refuses both).
///
/// # Errors
/// QUERY_TOO_LARGE or INVALID_INPUT past the bounds.
pub fn check_expanded_size(document: &ExecutableDocument, max_fields: usize) -> ServerResult<()> {
    let shapes: HashMap<&Name, Shape<'_>> = document
        .fragments
        .iter()
        .map(|(name, fragment)| (name, shape(&fragment.node.selection_set.node)))
        .collect();
    let sizes = expand_fragments(&shapes);
    let mut used: HashSet<&Name> = HashSet::new();
    let mut to_visit: Vec<&Name> = Vec::new();
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        let own = shape(&operation.node.selection_set.node);
        to_visit.extend(own.spreads.iter().map(|(name, _)| *name));
        let size = expand(&own, &sizes);
        if size.depth > MAX_NESTING {
            return Err(too_nested("query (with its fragments expanded)"));
        }
        total = total.saturating_add(size.fields);
    }
    if total > max_fields {
        return Err(refusal(
            codes::QUERY_TOO_LARGE,
            format!(
                "the document selects {} fields once its fragments are expanded, \
                 at most {max_fields} are allowed",
                if total == usize::MAX {
                    "more than 2^64".to_owned()
                } else {
                    total.to_string()
                }
            ),
        ));
    }
    while let Some(name) = to_visit.pop() {
        if used.insert(name) {
            if let Some(shape) = shapes.get(name) {
                to_visit.extend(shape.spreads.iter().map(|(spread, _)| *spread));
            }
        }
    }
    if let Some(unused) = shapes.keys().find(|name| !used.contains(*name)) {
        return Err(refusal(
            codes::INVALID_INPUT,
            format!("fragment \"{unused}\" is never used; remove it"),
        ));
    }
    Ok(())
}

/// A shape's size with the sizes of the fragments it spreads.
pub(super) fn expand(shape: &Shape<'_>, sizes: &HashMap<&Name, Expanded>) -> Expanded {
    let mut size = Expanded {
        fields: shape.fields,
        depth: shape.depth,
    };
    for (name, at) in &shape.spreads {
        let spread = sizes.get(name).copied().unwrap_or_default();
        size.fields = size.fields.saturating_add(spread.fields);
        // The fragment's top level sits at the spread's level; the hop to it
        // is a level of its own for the visitors that follow spreads.
        size.depth = size.depth.max(at.saturating_add(spread.depth));
    }
    size
}

/// Every fragment's expanded size, in dependency order (an explicit
/// depth-first walk; fragments on a cycle are left at their own size).
pub(super) fn expand_fragments<'a>(
    shapes: &HashMap<&'a Name, Shape<'a>>,
) -> HashMap<&'a Name, Expanded> {
    let mut sizes: HashMap<&Name, Expanded> = HashMap::with_capacity(shapes.len());
    let mut on_path: HashSet<&Name> = HashSet::new();
    for &root in shapes.keys() {
        if sizes.contains_key(root) {
            continue;
        }
        // (fragment, whether its spreads have been pushed)
        let mut stack = vec![(root, false)];
        while let Some((name, expanded)) = stack.pop() {
            let Some(shape) = shapes.get(name) else {
                continue;
            };
            if expanded {
                on_path.remove(name);
                let size = expand(shape, &sizes);
                sizes.insert(name, size);
                continue;
            }
            if sizes.contains_key(name) || !on_path.insert(name) {
                continue;
            }
            stack.push((name, true));
            for (spread, _) in &shape.spreads {
                if !sizes.contains_key(spread) && !on_path.contains(spread) {
                    stack.push((spread, false));
                }
            }
        }
    }
    sizes
}

/// Parses `query` with the checks that surround the parser: the text's
/// nesting before, the expanded size after (the fuzz target's entry).
///
/// # Errors
/// The first check that fails, or the parser's error, as INVALID_INPUT.
pub fn parse_and_check(query: &str, max_fields: usize) -> ServerResult<ExecutableDocument> {
    check_text_nesting(query)?;
    let document = async_graphql::parser::parse_query(query)
        .map_err(|err| refusal(codes::INVALID_INPUT, err.to_string()))?;
    check_expanded_size(&document, max_fields)?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_list(depth: usize) -> String {
        format!(
            "{{ __typename(x: {}1{}) }}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    fn code(error: &ServerError) -> String {
        error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn nesting_past_the_bound_is_refused_before_parsing() {
        assert!(check_text_nesting(&nested_list(MAX_NESTING - 2)).is_ok());
        let error = check_text_nesting(&nested_list(100_000)).unwrap_err();
        assert!(
            error.message.contains("nested more than"),
            "{}",
            error.message
        );
        assert_eq!(code(&error), "\"INVALID_INPUT\"");
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(1000);
        assert!(check_text_nesting(&format!("{{ a(x: \"{deep}\") }}")).is_ok());
        assert!(
            check_text_nesting(&format!("{{ a(x: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}")).is_ok()
        );
        assert!(check_text_nesting(&format!("# {deep}\n{{ a }}")).is_ok());
        assert!(check_text_nesting(&format!("{{ a(x: \"\\\"{deep}\") }}")).is_ok());
        // An unterminated string ends at the line's end.
        assert!(check_text_nesting(&format!("{{ a(x: \"oops\n{deep}) }}")).is_err());
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut value = serde_json::json!(1);
        for _ in 0..MAX_NESTING {
            value = serde_json::json!([value]);
        }
        let variables = Variables::from_json(serde_json::json!({ "v": value }));
        assert!(check_variables_nesting(&variables).is_err());
        let shallow = Variables::from_json(serde_json::json!({ "v": [[{"a": [1]}]] }));
        assert!(check_variables_nesting(&shallow).is_ok());
    }

    /// `levels` fragments, each spreading the previous one twice.
    fn fragment_bomb(levels: usize) -> String {
        let mut query = String::from("query { ...F0 } fragment F1 on Query { __typename }\n");
        query = query.replace("F0", &format!("F{levels}"));
        for level in 2..=levels {
            let previous = level - 1;
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{previous} ...F{previous} }}\n"
            ));
        }
        query
    }

    #[test]
    fn fragments_are_counted_expanded_without_expanding_them() {
        assert!(
            parse_and_check(&fragment_bomb(5), 1000).is_ok(),
            "16 fields"
        );
        let error = parse_and_check(&fragment_bomb(40), 1000).unwrap_err();
        assert_eq!(code(&error), "\"QUERY_TOO_LARGE\"", "{}", error.message);
    }

    #[test]
    fn long_fragment_chains_are_refused_as_too_deep() {
        let mut query = String::from("query { ...F5000 } fragment F0 on Query { __typename }\n");
        for level in 1..=5000 {
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{} }}\n",
                level - 1
            ));
        }
        let error = parse_and_check(&query, 1000).unwrap_err();
        assert!(
            error.message.contains("nested more than"),
            "{}",
            error.message
        );
    }

    #[test]
    fn fragment_cycles_and_unknown_fragments_count_as_nothing() {
        let cycle = "query { ...A } fragment A on Query { a ...B } fragment B on Query { b ...A }";
        assert!(parse_and_check(cycle, 1000).is_ok());
        assert!(parse_and_check("query { ...Missing x }", 1000).is_ok());
    }

    #[test]
    fn unused_fragments_are_refused_before_the_engine_walks_them() {
        let mut query = String::from("{ a }\nfragment F0 on Query { b }\n");
        for level in 1..=5000 {
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{} }}\n",
                level - 1
            ));
        }
        let error = parse_and_check(&query, 1000).unwrap_err();
        assert!(error.message.contains("is never used"), "{}", error.message);
        let used = "query { ...A } fragment A on Query { a ...B } fragment B on Query { b }";
        assert!(parse_and_check(used, 1000).is_ok());
    }

    #[test]
    fn the_fields_of_every_operation_count_together() {
        let mut query = String::from("fragment F on Query { a b c d e f g h i j }\n");
        for op in 0..101 {
            query.push_str(&format!("query q{op} {{ ...F }}\n"));
        }
        assert_eq!(
            code(&parse_and_check(&query, 1000).unwrap_err()),
            "\"QUERY_TOO_LARGE\""
        );
    }

    #[test]
    fn aliases_count_as_fields() {
        let fields: Vec<String> = (0..20).map(|i| format!("a{i}: __typename")).collect();
        let query = format!("{{ {} }}", fields.join(" "));
        assert!(parse_and_check(&query, 20).is_ok());
        assert!(parse_and_check(&query, 19).is_err());
    }
}
