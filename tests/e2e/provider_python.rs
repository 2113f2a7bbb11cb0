//! Provider plugin written in another language: test to come.
