"""The links stage: Reddit submissions -> outbound links with karma. `stage.py`: flags, options and summary;
`transform.py`: the Beam transform; `reddit.py`: `webtext reddit`, live listings into a dump."""
