using System.Collections.Concurrent;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>Keeps every log event of an in-process proxy as a JSON line, so tests can read the log.</summary>
public sealed class CollectingSink : ILogEventSink
{
    private readonly RenderedCompactJsonFormatter _formatter = new();

    public ConcurrentQueue<string> Lines { get; } = new();

    public string Text => string.Join('\n', Lines);

    /// <summary>The last lines' messages only, for assertion messages.</summary>
    public string Tail(int count = 40) => string.Join('\n', Lines.TakeLast(count).Select(Message));

    /// <summary>
    /// Waits for <paramref name="count"/> matching lines. Request lines (and request metrics) are written
    /// when the response has ended, so a client can hold its whole answer a moment before the proxy has
    /// logged and counted it.
    /// </summary>
    public Task<bool> WaitForAsync(Func<string, bool> match, TimeSpan? timeout = null, int count = 1) =>
        Poll.UntilAsync(() => Lines.Count(match) >= count, timeout ?? TimeSpan.FromSeconds(5));

    private static string Message(string json)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        return document.RootElement.TryGetProperty("@m", out var message) ? message.GetString() ?? json : json;
    }

    public void Emit(LogEvent logEvent)
    {
        using var writer = new StringWriter();
        _formatter.Format(logEvent, writer);
        Lines.Enqueue(writer.ToString().TrimEnd());
    }
}
