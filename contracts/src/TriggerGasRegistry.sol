// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Governed} from "./Governed.sol";

/// @title TriggerGasRegistry
/// @notice Prepaid balances that pay for task execution. Anyone may deposit for
///         any account; only the account may withdraw its balance; only the
///         execution hub may move a balance, and only to a task's performer.
///         Fees are credited inside the registry, never pushed, so charging a
///         job owner makes no external call.
contract TriggerGasRegistry is Governed {
    mapping(address => uint256) public balanceOf;
    address public hub;

    event Deposited(address indexed account, address indexed from, uint256 amount, uint256 balance);
    event Withdrawn(address indexed account, address indexed to, uint256 amount, uint256 balance);
    event Charged(
        address indexed owner, address indexed performer, uint256 indexed taskId, uint256 amount
    );
    event HubChanged(address indexed previous, address indexed current);

    error NotHub(address caller);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error ZeroAmount();
    error TransferFailed(address to, uint256 amount);

    constructor(address initialGovernor) Governed(initialGovernor) {}

    function setHub(address newHub) external onlyGovernor {
        emit HubChanged(hub, newHub);
        hub = newHub;
    }

    function deposit() external payable {
        _credit(msg.sender);
    }

    function depositFor(address account) external payable {
        _credit(account);
    }

    function withdraw(uint256 amount, address payable to) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = balanceOf[msg.sender];
        if (balance < amount) revert InsufficientBalance(msg.sender, balance, amount);
        balanceOf[msg.sender] = balance - amount;
        emit Withdrawn(msg.sender, to, amount, balance - amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @notice Move `amount` from `owner` to `performer` for task `taskId`.
    function charge(address owner, address performer, uint256 taskId, uint256 amount) external {
        if (msg.sender != hub) revert NotHub(msg.sender);
        uint256 balance = balanceOf[owner];
        if (balance < amount) revert InsufficientBalance(owner, balance, amount);
        balanceOf[owner] = balance - amount;
        balanceOf[performer] += amount;
        emit Charged(owner, performer, taskId, amount);
    }

    function _credit(address account) private {
        if (msg.value == 0) revert ZeroAmount();
        uint256 balance = balanceOf[account] + msg.value;
        balanceOf[account] = balance;
        emit Deposited(account, msg.sender, msg.value, balance);
    }
}
