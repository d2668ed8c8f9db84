"""An HTML template for `dvc plots show` whose plotting scripts are bundled, so the page works offline."""
