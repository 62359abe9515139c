"""Network generators g(params, seed) -> Backbone. Every module here registers its generators."""
