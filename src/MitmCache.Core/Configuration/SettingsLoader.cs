using System.Collections;

namespace MitmCache.Configuration;

/// <summary>
/// Turns flags, environment and config file into checked <see cref="ProxySettings"/>, collecting every
/// problem so an operator fixes them all in one go (BaGet's ValidateStartupOptions does the same).
/// </summary>
public static class SettingsLoader
{
    /// <summary>File (<c>--config</c> or <c>MITMCACHE_CONFIG</c>), then environment, then flags; then each option parsed and the whole checked.</summary>
    /// <param name="adjust">Applied before the checks across options: socket activation puts the addresses of the sockets
    /// systemd passed in place of <c>--listen</c>, so the open-proxy check applies to where the proxy really listens.</param>
    public static ProxySettings? Load(IReadOnlyList<string> flags, IDictionary environment, List<string> errors, Func<ProxySettings, ProxySettings>? adjust = null)
    {
        var start = errors.Count;
        var given = OptionLayers.Read(flags, environment, ProxyOptions.All, errors);
        // The bucket's keys come from the same environment as the options (never from a flag).
        Func<string, string?> variables = name => environment[name] as string;
        var settings = Bind(given, errors, s => adjust?.Invoke(s with { CredentialVariables = variables }) ?? s with { CredentialVariables = variables });
        return errors.Count == start ? settings : null;
    }

    /// <summary>Every option from what was given, or its default; then the checks across options. Null if anything is wrong.</summary>
    public static ProxySettings? Bind(IReadOnlyDictionary<OptionDefinition, GivenValue> given, List<string> errors, Func<ProxySettings, ProxySettings>? adjust = null)
    {
        var start = errors.Count;
        var settings = new ProxySettings { DataDirectory = "" };
        foreach (var option in ProxyOptions.All)
        {
            settings = option.Bind(settings, given.GetValueOrDefault(option), errors);
        }

        settings = adjust?.Invoke(settings) ?? settings;
        settings = ProxyOptions.Check(settings, errors);
        return errors.Count == start ? settings : null;
    }
}
