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

    public void Emit(LogEvent logEvent)
    {
        using var writer = new StringWriter();
        _formatter.Format(logEvent, writer);
        Lines.Enqueue(writer.ToString().TrimEnd());
    }
}
