using MitmCache.Configuration;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace MitmCache.Diagnostics;

/// <summary>Serilog set-up: plain console lines, or one JSON object per line with <c>--log-format json</c>.</summary>
public static class Logging
{
    public static Serilog.Core.Logger Create(bool json, LogEventLevel level)
    {
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("System.Net.Http", LogEventLevel.Warning)
            .Enrich.FromLogContext();

        return (json
            ? configuration.WriteTo.Console(new RenderedCompactJsonFormatter(), standardErrorFromLevel: LogEventLevel.Verbose)
            : configuration.WriteTo.Console(
                outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} [{ConnectionId}] {Message:lj}{NewLine}{Exception}",
                standardErrorFromLevel: LogEventLevel.Verbose))
            .CreateLogger();
    }

    public static Serilog.Core.Logger Create(ProxySettings settings) => Create(settings.JsonLogs, settings.LogLevel);
}
