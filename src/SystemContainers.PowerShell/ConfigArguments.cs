using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// Lets -Config take KEY=VALUE strings as well as a hashtable (LXD's -c key=value):
/// PowerShell offers no argument completion inside a hashtable literal, but does for bare words,
/// so the strings are the form whose keys complete on Tab.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigArgumentAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        object? value = inputData is PSObject { BaseObject: var b } ? b : inputData;
        if (value is null or IDictionary) return value;
        var items = value is IEnumerable e and not string ? e.Cast<object?>() : [value];
        var config = new Hashtable(StringComparer.OrdinalIgnoreCase);
        foreach (var item in items)
        {
            string text = LanguagePrimitives.ConvertTo<string>(item is PSObject p ? p.BaseObject : item);
            int eq = text.IndexOf('=');
            if (eq <= 0)
                throw new ArgumentTransformationMetadataException($"config '{text}' must be KEY=VALUE (limits.memory=256MiB) or a hashtable (@{{ 'limits.memory' = '256MiB' }})");
            string key = text[..eq];
            if (config.ContainsKey(key))
                throw new ArgumentTransformationMetadataException($"config key '{key}' is given twice");
            config[key] = text[(eq + 1)..];
        }
        return config;
    }
}

/// <summary>Completes config keys as KEY= from the running daemon's list; never starts a daemon.</summary>
public abstract class ConfigKeyCompleter : IArgumentCompleter
{
    protected abstract IEnumerable<string> Keys(SystemContainerHost host);

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        // A value is the user's to type; quotes they opened stay theirs.
        if (wordToComplete.Contains('=')) return [];
        string word = wordToComplete.TrimStart('\'', '"');
        var client = DaemonConnection.IfRunning();
        if (client is null) return [];
        var pattern = new WildcardPattern(WildcardPattern.Escape(word) + "*", WildcardOptions.IgnoreCase);
        return Keys(client.GetHostAsync().GetAwaiter().GetResult()).Where(pattern.IsMatch).Order(StringComparer.Ordinal)
            .Select(k => k.EndsWith('.') ? k : k + "=")
            .Select(k => new CompletionResult(k, k.TrimEnd('='), CompletionResultType.ParameterValue, k.TrimEnd('='))).ToList();
    }
}

public sealed class ContainerConfigKeyCompleter : ConfigKeyCompleter
{
    protected override IEnumerable<string> Keys(SystemContainerHost host) => host.ContainerConfigKeys;
}

public sealed class NetworkConfigKeyCompleter : ConfigKeyCompleter
{
    protected override IEnumerable<string> Keys(SystemContainerHost host) => host.NetworkConfigKeys;
}
