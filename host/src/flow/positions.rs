//! Where each field of a flow document stands in its text, so a problem
//! found at a path (`decision_trees.support.decisions.welcome.targets[2]`)
//! can also say which line and column of the YAML (or JSON: it is YAML
//! too) the admin should look at.

use std::collections::HashMap;

use serde::Serialize;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::Issue;

/// A place in a document's text, both counted from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// The location of every field and list item of one document, by path.
#[derive(Debug, Default)]
pub struct Positions(HashMap<String, Location>);

impl Positions {
    /// Reads `text`'s first document; a text that is not YAML has no
    /// positions (its syntax error carries its own).
    pub fn of(text: &str) -> Positions {
        let mut walk = Walk::default();
        match Parser::new_from_str(text).load(&mut walk, false) {
            Ok(()) => Positions(walk.found),
            Err(_) => Positions::default(),
        }
    }

    /// Where `path` stands, or else the nearest field around it that the
    /// text has (a problem inside a template string is at its field).
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(found) = self.0.get(path) {
                return Some(*found);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    /// Gives each issue without a location the one of its path.
    pub fn annotate(&self, issues: &mut [Issue]) {
        for issue in issues.iter_mut().filter(|issue| issue.at.is_none()) {
            issue.at = self.locate(&issue.path);
        }
    }
}

/// The containers open around the event being read.
enum Frame {
    /// A mapping at `path`, and the key whose value comes next (if any).
    Map { path: String, key: Option<String> },
    /// A sequence at `path`, and the index of its next item.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    found: HashMap<String, Location>,
}

impl Walk {
    /// The path of the node that starts here, or `None` when it is a
    /// mapping's key (then remembered, at the key's own place).
    fn node_path(&mut self, event: &Event, mark: Marker) -> Option<String> {
        let at = Location {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                // A mapping is located by its first key (the parser marks
                // a block mapping's start at that key's colon).
                if !matches!(event, Event::MappingStart(..)) {
                    self.found.entry(item.clone()).or_insert(at);
                }
                Some(item)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(key) => Some(join(path, &key)),
                None => {
                    let name = match event {
                        Event::Scalar(name, ..) => name.clone(),
                        _ => "?".to_string(),
                    };
                    self.found.entry(path.clone()).or_insert(at);
                    self.found.entry(join(path, &name)).or_insert(at);
                    *key = Some(name);
                    None
                }
            },
        }
    }

    /// A value ended: its mapping waits for the next key again.
    fn value_done(&mut self) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = None;
        }
    }
}

impl MarkedEventReceiver for Walk {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match &event {
            // A scalar or alias that is a value (not a key) ends it.
            Event::Scalar(..) | Event::Alias(..) if self.node_path(&event, mark).is_some() => {
                self.value_done()
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A mapping used as a key is not a field: give it a name
                // nothing looks up.
                let path = self.node_path(&event, mark).unwrap_or_default();
                let frame = match event {
                    Event::MappingStart(..) => Frame::Map { path, key: None },
                    _ => Frame::Seq { path, next: 0 },
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "\
connectors:
  dm: { title: DMs, account: shop }
decision_trees:
  support:
    start: welcome
    decisions:
      welcome:
        targets:
          - when: pattern
            pattern: '^a'
          - { when: sometimes, go: { queue: q } }
";

    fn at(line: usize, column: usize) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn fields_and_items_are_found_where_they_are_written() {
        let positions = Positions::of(FLOW);
        assert_eq!(positions.locate("connectors"), at(1, 1));
        assert_eq!(positions.locate("connectors.dm.account"), at(2, 21));
        assert_eq!(
            positions.locate("decision_trees.support.decisions.welcome.targets[0].pattern"),
            at(10, 13)
        );
        assert_eq!(
            positions.locate("decision_trees.support.decisions.welcome.targets[1].when"),
            at(11, 15)
        );
        assert_eq!(
            positions.locate("decision_trees.support.decisions.welcome.targets[1].go.queue"),
            at(11, 38)
        );
    }

    /// A path the text lacks (a missing field, a string's inside) points at
    /// the nearest field that is written; one outside everything, nowhere.
    #[test]
    fn a_path_not_written_points_at_its_nearest_field() {
        let positions = Positions::of(FLOW);
        assert_eq!(positions.locate("connectors.dm.next"), at(2, 3));
        assert_eq!(
            positions.locate("decision_trees.support.decisions.welcome.targets[0].go"),
            at(9, 13)
        );
        assert_eq!(positions.locate("queues.sales"), None);
        assert_eq!(positions.locate("(document)"), None);
    }

    #[test]
    fn json_is_located_too_and_broken_text_has_no_positions() {
        let positions = Positions::of("{\"queues\": {\"a\": {\"name\": \"A\"}}}");
        assert_eq!(positions.locate("queues.a.name"), at(1, 19));
        assert_eq!(Positions::of("a: [unclosed").locate("a"), None);
    }
}
