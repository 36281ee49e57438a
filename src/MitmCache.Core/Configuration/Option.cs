namespace MitmCache.Configuration;

/// <summary>Parses one raw value: true and the value, or false and what was expected instead.</summary>
public delegate bool OptionParser<T>(string text, out T value, out string expected);

/// <summary>An option with one value (or a switch) of type <typeparamref name="T"/>.</summary>
public sealed class Option<T> : OptionDefinition
{
    private readonly OptionParser<T> _parse;
    private readonly Func<ProxySettings, T, ProxySettings> _store;

    internal Option(string name, OptionArity arity, string valueName, string? defaultText, string help,
        OptionParser<T> parse, Func<ProxySettings, T, ProxySettings> store, T none)
        : base(name, arity, valueName, defaultText, help)
    {
        _parse = parse;
        _store = store;
        Default = none;
        if (defaultText is not null)
        {
            Default = parse(defaultText, out var value, out var expected)
                ? value
                : throw new ArgumentException($"{Flag}: the default '{defaultText}' does not parse: {expected}", nameof(defaultText));
        }
    }

    /// <summary>The value when no source names the option; what <see cref="ProxySettings"/> starts from.</summary>
    public T Default { get; }

    internal override ProxySettings Bind(ProxySettings settings, GivenValue? given, List<string> errors)
    {
        if (given is null)
        {
            return _store(settings, Default);
        }

        var text = given.Values[0];
        if (_parse(text, out var value, out var expected))
        {
            return _store(settings, value);
        }

        errors.Add(Problem(text, given, $"expected {expected}"));
        return settings;
    }
}

/// <summary>A repeatable option whose items are <typeparamref name="T"/>; every bad item is reported.</summary>
public sealed class ListOption<T> : OptionDefinition
{
    private readonly OptionParser<T> _parse;
    private readonly Func<ProxySettings, IReadOnlyList<T>, ProxySettings> _store;

    internal ListOption(string name, string valueName, string help, OptionParser<T> parse, Func<ProxySettings, IReadOnlyList<T>, ProxySettings> store)
        : base(name, OptionArity.List, valueName, defaultText: null, help)
    {
        _parse = parse;
        _store = store;
    }

    internal override ProxySettings Bind(ProxySettings settings, GivenValue? given, List<string> errors)
    {
        var items = new List<T>();
        var valid = true;
        foreach (var text in given?.Values ?? [])
        {
            if (_parse(text, out var item, out var expected))
            {
                items.Add(item);
            }
            else
            {
                errors.Add(Problem(text, given, $"expected {expected}"));
                valid = false;
            }
        }

        return valid ? _store(settings, items) : settings;
    }
}
