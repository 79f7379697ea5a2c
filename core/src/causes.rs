//! An error with its causes spelled out ("client error (Connect): tcp connect
//! error: Connection refused"), for messages an operator reads. Layers that
//! repeat their cause's text are not repeated.

/// `e` and each of its sources, joined by `: `.
pub fn spell_out(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_joined_once() {
        let e = Layer("client error (Connect)", Some(Box::new(Layer("tcp connect error", Some(Box::new(Layer("Connection refused", None)))))));
        assert_eq!(spell_out(&e), "client error (Connect): tcp connect error: Connection refused");
        let repeated = Layer("io: Connection refused", Some(Box::new(Layer("Connection refused", None))));
        assert_eq!(spell_out(&repeated), "io: Connection refused");
    }
}
