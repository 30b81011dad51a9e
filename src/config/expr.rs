//! Named parameters and expressions in values: a `[parameters]` table of numbers, and string
//! values that start with `=` evaluated with them (`weight = "= -g * J"`), before the
//! configuration is read. A sweep over `g` is then one `--set parameters.g=...`, and the
//! resolved configuration (`check --resolved`, every output's `config`) holds the numbers.
//!
//! Expressions: numbers, parameter names, `+ - * /`, `^` (power), parentheses, unary minus,
//! and `sqrt(x)`, `exp(x)`, `ln(x)`. A whole-number result becomes a TOML integer (so that
//! counts such as `indegree = "= K"` read as integers).

use super::{invalid, Result};
use indexmap::IndexMap;

/// Replaces every `"= ..."` string in `table` (outside `[parameters]`) by its value.
pub(super) fn substitute(table: &mut toml::Table) -> Result<()> {
    let mut parameters = IndexMap::new();
    if let Some(p) = table.get("parameters") {
        let Some(p) = p.as_table() else {
            return Err(invalid("parameters", p, "must be a table of numbers"));
        };
        for (name, v) in p {
            let x = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    invalid(format!("parameters.{name}"), v, "must be a finite number")
                })?;
            parameters.insert(name.clone(), x);
        }
    }
    for (k, v) in table.iter_mut().filter(|(k, _)| *k != "parameters") {
        walk(v, k, &parameters)?;
    }
    Ok(())
}

fn walk(v: &mut toml::Value, key: &str, parameters: &IndexMap<String, f64>) -> Result<()> {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t.iter_mut() {
                walk(x, &format!("{key}.{k}"), parameters)?;
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                walk(x, &format!("{key}[{i}]"), parameters)?;
            }
        }
        toml::Value::String(s) if s.trim_start().starts_with('=') => {
            let text = s.trim_start()[1..].to_string();
            let x = Parser::new(&text, parameters)
                .parse()
                .map_err(|reason| invalid(key, format!("{s:?}"), reason))?;
            *v = if x.fract() == 0.0 && x.abs() < 9.0e15 {
                toml::Value::Integer(x as i64)
            } else {
                toml::Value::Float(x)
            };
        }
        _ => {}
    }
    Ok(())
}

/// A recursive-descent parser that evaluates as it goes.
struct Parser<'a> {
    chars: Vec<char>,
    at: usize,
    parameters: &'a IndexMap<String, f64>,
}

type Eval = std::result::Result<f64, String>;

impl<'a> Parser<'a> {
    fn new(text: &str, parameters: &'a IndexMap<String, f64>) -> Self {
        Parser {
            chars: text.chars().collect(),
            at: 0,
            parameters,
        }
    }

    fn parse(mut self) -> Eval {
        let x = self.sum()?;
        self.space();
        if self.at < self.chars.len() {
            return Err(format!(
                "unexpected {:?} in the expression",
                self.chars[self.at]
            ));
        }
        if !x.is_finite() {
            return Err(format!("evaluates to {x}, not a finite number"));
        }
        Ok(x)
    }

    fn space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.chars.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Eval {
        let mut x = self.product()?;
        loop {
            if self.eat('+') {
                x += self.product()?;
            } else if self.eat('-') {
                x -= self.product()?;
            } else {
                return Ok(x);
            }
        }
    }

    fn product(&mut self) -> Eval {
        let mut x = self.power()?;
        loop {
            if self.eat('*') {
                x *= self.power()?;
            } else if self.eat('/') {
                x /= self.power()?;
            } else {
                return Ok(x);
            }
        }
    }

    fn power(&mut self) -> Eval {
        let x = self.unary()?;
        if self.eat('^') {
            // Right-associative: a ^ b ^ c = a ^ (b ^ c).
            return Ok(x.powf(self.power()?));
        }
        Ok(x)
    }

    fn unary(&mut self) -> Eval {
        if self.eat('-') {
            return Ok(-self.unary()?);
        }
        if self.eat('+') {
            return self.unary();
        }
        self.atom()
    }

    fn atom(&mut self) -> Eval {
        self.space();
        if self.eat('(') {
            let x = self.sum()?;
            if !self.eat(')') {
                return Err("a parenthesis is not closed".into());
            }
            return Ok(x);
        }
        let start = self.at;
        let c = *self
            .chars
            .get(self.at)
            .ok_or("the expression ends too early")?;
        if c.is_ascii_digit() || c == '.' {
            while self
                .chars
                .get(self.at)
                .is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E')
                || (self.at > start
                    && matches!(self.chars.get(self.at), Some('+' | '-'))
                    && matches!(self.chars.get(self.at - 1), Some('e' | 'E')))
            {
                self.at += 1;
            }
            let s: String = self.chars[start..self.at].iter().collect();
            return s.parse().map_err(|_| format!("{s:?} is not a number"));
        }
        if c.is_alphabetic() || c == '_' {
            while self
                .chars
                .get(self.at)
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                self.at += 1;
            }
            let name: String = self.chars[start..self.at].iter().collect();
            if self.eat('(') {
                let x = self.sum()?;
                if !self.eat(')') {
                    return Err("a parenthesis is not closed".into());
                }
                return match name.as_str() {
                    "sqrt" => Ok(x.sqrt()),
                    "exp" => Ok(x.exp()),
                    "ln" => Ok(x.ln()),
                    _ => Err(format!("unknown function {name} (sqrt, exp, ln)")),
                };
            }
            return self.parameters.get(&name).copied().ok_or_else(|| {
                let known: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
                format!(
                    "{name} is not a parameter (the [parameters] table has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            });
        }
        Err(format!("unexpected {c:?} in the expression"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str) -> Eval {
        let p: IndexMap<String, f64> = [("g".to_string(), 5.0), ("J".to_string(), 0.1)].into();
        Parser::new(text, &p).parse()
    }

    /// Values against the same arithmetic written in Rust.
    #[test]
    fn expressions_follow_the_usual_precedence() {
        assert_eq!(eval("-g * J").unwrap(), -5.0 * 0.1);
        assert_eq!(eval("1 + 2 * 3 ^ 2").unwrap(), 1.0 + 2.0 * 9.0);
        assert_eq!(eval("2 ^ 3 ^ 2").unwrap(), 2f64.powf(9.0));
        assert_eq!(eval("(1 + 2) * -J / 4").unwrap(), 3.0 * -0.1 / 4.0);
        assert_eq!(eval("sqrt(g * 20) + exp(0) + ln(1)").unwrap(), 10.0 + 1.0);
        assert_eq!(eval("1.5e-3 * 2E2").unwrap(), 1.5e-3 * 2e2);
        assert!(eval("h * 2")
            .unwrap_err()
            .contains("h is not a parameter (the [parameters] table has: g, J)"));
        assert!(eval("(1 + 2").unwrap_err().contains("not closed"));
        assert!(eval("1 / 0").unwrap_err().contains("not a finite number"));
        assert!(eval("2 $ 3").unwrap_err().contains("unexpected '$'"));
        assert!(eval("cos(1)").unwrap_err().contains("unknown function cos"));
    }
}
