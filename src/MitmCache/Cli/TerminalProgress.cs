using System.Diagnostics;
using System.Text;
using MitmCache.Prefetch;
using MitmCache.Registry;

namespace MitmCache.Cli;

/// <summary>
/// Prefetch progress on a terminal, like <c>docker pull</c>: finished lines scroll, and the blobs of the
/// current image form a block at the bottom with one progress bar each, redrawn in place (ANSI cursor
/// movement) at most ten times a second.
/// </summary>
internal sealed class TerminalProgress(TextWriter output) : IPrefetchProgress
{
    private const int BarWidth = 30;
    private static readonly TimeSpan s_redrawInterval = TimeSpan.FromMilliseconds(100);

    private readonly Lock _gate = new();
    private readonly List<Bar> _bars = [];
    private readonly Stopwatch _sinceRedraw = Stopwatch.StartNew();
    private int _drawnLines;

    public void ImageStarted(ImageReference image) => Print($"{image}: resolving");

    public void ManifestFetched(ImageReference image, Digest digest, string mediaType, long size, string? cacheResult) =>
        Print($"  {TextFormat.ShortDigest(digest.ToString())}  manifest  {mediaType} ({cacheResult ?? "-"})");

    public void BlobStarted(Digest digest, string kind, long size)
    {
        lock (_gate)
        {
            _bars.Add(new Bar(digest, kind, size));
            Redraw();
        }
    }

    public void BlobProgress(Digest digest, long bytes)
    {
        lock (_gate)
        {
            if (_bars.Find(b => b.Digest == digest) is { } bar)
            {
                bar.Bytes = bytes;
            }

            if (_sinceRedraw.Elapsed >= s_redrawInterval)
            {
                Redraw();
            }
        }
    }

    public void BlobCompleted(Digest digest, long bytes, string? cacheResult)
    {
        lock (_gate)
        {
            if (_bars.Find(b => b.Digest == digest) is { } bar)
            {
                bar.Bytes = bytes;
                bar.Result = cacheResult ?? "done";
            }

            Redraw();
        }
    }

    public void ImageCompleted(PrefetchResult result)
    {
        lock (_gate)
        {
            Redraw();
            _bars.Clear();
            _drawnLines = 0; // the finished block stays on screen above what comes next
            output.WriteLine(PlainProgress.Summary(result));
            output.Flush();
        }
    }

    private void Print(string line)
    {
        lock (_gate)
        {
            Erase();
            output.WriteLine(Fit(line));
            _drawnLines = 0;
            Redraw();
        }
    }

    /// <summary>Moves up over the block drawn last time and draws it again.</summary>
    private void Redraw()
    {
        var text = new StringBuilder();
        if (_drawnLines > 0)
        {
            text.Append("\e[").Append(_drawnLines).Append('F');
        }

        foreach (var bar in _bars)
        {
            text.Append("\e[2K").Append(Fit(bar.Render())).Append('\n');
        }

        _drawnLines = _bars.Count;
        output.Write(text.ToString());
        output.Flush();
        _sinceRedraw.Restart();
    }

    private void Erase()
    {
        if (_drawnLines > 0)
        {
            output.Write($"\e[{_drawnLines}F\e[J");
            _drawnLines = 0;
        }
    }

    /// <summary>Cuts a line to the terminal width, so that a wrapped line does not break the cursor arithmetic.</summary>
    private static string Fit(string line)
    {
        int width;
        try
        {
            width = Console.WindowWidth;
        }
        catch (IOException)
        {
            width = 120;
        }

        return width > 10 && line.Length >= width ? line[..(width - 1)] : line;
    }

    private sealed class Bar(Digest digest, string kind, long size)
    {
        public Digest Digest { get; } = digest;

        public long Bytes { get; set; }

        public string? Result { get; set; }

        public string Render()
        {
            var head = $"  {TextFormat.ShortDigest(Digest.ToString())}  {kind,-8}  ";
            if (Result is not null)
            {
                return $"{head}{TextFormat.Size(Bytes)} ({Result})";
            }

            var fraction = size > 0 ? Math.Clamp((double)Bytes / size, 0, 1) : 0;
            var filled = (int)(fraction * BarWidth);
            var bar = new string('=', filled) + (filled < BarWidth ? ">" + new string(' ', BarWidth - filled - 1) : "");
            return $"{head}[{bar}] {TextFormat.Size(Bytes)} / {(size >= 0 ? TextFormat.Size(size) : "?")}";
        }
    }
}
