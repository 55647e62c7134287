"""Ready monoid instances."""
