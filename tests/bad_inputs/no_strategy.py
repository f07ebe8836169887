"""A file with a trading idea but no Strategy subclass."""


class MyRule:
    def on_bar(self, bar):
        pass
