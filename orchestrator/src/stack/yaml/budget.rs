//! Pass one of the YAML reader: the stream's events, recorded, with the cost of alias
//! expansion charged before a single node is built.
//!
//! Why a pass of its own: building the tree copies an anchored node for every alias to
//! it, so a budget checked while building is only exceeded after the budget's worth of
//! nodes has been made (a 422-byte file took seconds and hundreds of MB to be refused).
//! Here each anchor's expanded size is known when its node ends (an alias inside counts
//! as its referent's size), so the alias that would take the document over
//! [`MAX_ALIAS_NODES`] is refused as it is read, at the cost of reading the events.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, Span as RawSpan};

use super::{parser_error, SourceFile, Span, YamlError, MAX_ALIAS_NODES};

/// The events of a stream, up to where pass two must stop.
pub(super) struct Recorded<'i> {
    pub events: Vec<(Event<'i>, RawSpan)>,
    /// The parser's error where it stopped, reported by pass two when it gets there, so
    /// that errors in the order of the file stay in that order.
    pub tail: Option<YamlError>,
}

/// A collection being read: its anchor, its size so far, and (for a mapping) whether
/// the next child is a key. Keys are not counted, as they are no nodes of the tree.
struct Open {
    anchor: usize,
    size: usize,
    map: bool,
    children: usize,
}

#[derive(Default)]
struct Sizes {
    open: Vec<Open>,
    /// Expanded size of each finished anchor of the current document.
    anchors: HashMap<usize, usize>,
    /// Nodes the document's aliases add, so far.
    expanded: usize,
}

impl Sizes {
    fn finish(&mut self, anchor: usize, size: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, size);
        }
        if let Some(parent) = self.open.last_mut() {
            let key = parent.map && parent.children % 2 == 0;
            parent.children += 1;
            if !key {
                parent.size = parent.size.saturating_add(size);
            }
        }
    }
}

/// Reads every event of `text`, refusing the first alias that would make its document
/// expand beyond [`MAX_ALIAS_NODES`] nodes.
pub(super) fn record<'i>(file: &Arc<SourceFile>, text: &'i str) -> Result<Recorded<'i>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut events = Vec::new();
    let mut sizes = Sizes::default();
    loop {
        let (event, raw) = match parser.next_event() {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                return Ok(Recorded {
                    events,
                    tail: Some(parser_error(file, &e)),
                })
            }
            None => break,
        };
        match &event {
            Event::DocumentStart(_) => sizes = Sizes::default(),
            Event::Scalar(_, _, anchor, _) => sizes.finish(*anchor, 1),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                sizes.open.push(Open {
                    anchor: *anchor,
                    size: 1,
                    map: matches!(event, Event::MappingStart(..)),
                    children: 0,
                })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = sizes.open.pop() {
                    sizes.finish(done.anchor, done.size);
                }
            }
            Event::Alias(id) => {
                let Some(&size) = sizes.anchors.get(id) else {
                    // A cycle or an unknown anchor: pass two refuses it right here.
                    events.push((event, raw));
                    return Ok(Recorded { events, tail: None });
                };
                sizes.expanded = sizes.expanded.saturating_add(size);
                if sizes.expanded > MAX_ALIAS_NODES {
                    return Err(YamlError {
                        span: Span::from_raw(file, &raw),
                        message: format!(
                            "excessive aliasing: expanding aliases would create more than {MAX_ALIAS_NODES} nodes (an alias bomb?)"
                        ),
                    });
                }
                sizes.finish(0, size);
            }
            _ => {}
        }
        let end = matches!(event, Event::StreamEnd);
        events.push((event, raw));
        if end {
            break;
        }
    }
    Ok(Recorded { events, tail: None })
}
