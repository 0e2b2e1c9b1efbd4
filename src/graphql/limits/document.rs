//! Counting the aliases and directives a parsed document spells out, in every position,
//! and noticing whether it asks about the schema.
//!
//! Each definition is walked once, where it is written: a fragment spread many times is
//! counted once here, and its executions are what the complexity limit counts.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// What one document spells out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Spelled {
    pub aliases: usize,
    pub directives: usize,
    /// Whether it selects `__schema` or `__type` anywhere.
    pub introspects: bool,
}

/// The aliases and directives of every operation, variable and fragment of `document`.
pub fn spelled(document: &ExecutableDocument) -> Spelled {
    let mut spelled = Spelled::default();
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        spelled.directives += operation.directives.len();
        for variable in &operation.variable_definitions {
            spelled.directives += variable.node.directives.len();
        }
        spelled.add_selections(&operation.selection_set.node);
    }
    for fragment in document.fragments.values() {
        spelled.directives += fragment.node.directives.len();
        spelled.add_selections(&fragment.node.selection_set.node);
    }
    spelled
}

impl Spelled {
    fn add_selections(&mut self, set: &SelectionSet) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    self.aliases += usize::from(field.node.alias.is_some());
                    let name = field.node.name.node.as_str();
                    self.introspects |= name == "__schema" || name == "__type";
                    self.directives += field.node.directives.len();
                    self.add_selections(&field.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives += spread.node.directives.len();
                }
                Selection::InlineFragment(inline) => {
                    self.directives += inline.node.directives.len();
                    self.add_selections(&inline.node.selection_set.node);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::{Spelled, spelled};

    #[test]
    fn counts_directives_in_every_position() {
        let document = parse_query(
            "query Q($v: Int @a) @b { x: f @c { ...F @d ... @e { y: g } } } \
             fragment F on T @f { z: h @g __type(name: \"T\") { name } }",
        )
        .expect("parses");
        assert_eq!(
            spelled(&document),
            Spelled {
                aliases: 3,
                directives: 7,
                introspects: true,
            }
        );
    }
}
